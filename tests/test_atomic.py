"""Atomic writes: a failure mid-write leaves the old file and no partial or temporary file."""

from __future__ import annotations

import os

import pytest

from clipit import atomic


def test_write_replaces_content(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    atomic.write_text(target, "one")
    atomic.write_text(target, "two")
    assert target.read_text() == "two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.txt"]


def test_exception_mid_write_keeps_old_file(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as tmp:
        tmp.write_bytes(b"half of the new con")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_stale_temporaries_are_removed(tmp_path):
    (tmp_path / ".clipit-f.bin.abc.tmp").write_bytes(b"x")
    (tmp_path / ".clipit-zeroshot.abc.tmp" / "colour").mkdir(parents=True)  # a killed atomic_folder
    (tmp_path / ".clipit-zeroshot.abc.tmp" / "colour" / "0.jpg").write_bytes(b"x")
    (tmp_path / "keep.bin").write_bytes(b"y")
    (tmp_path / ".editor.swp.tmp").write_bytes(b"not ours")  # another program's temporary file
    assert atomic.remove_stale_temporaries(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [".editor.swp.tmp", "keep.bin"]


def test_written_file_honours_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic.write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644


def test_atomic_folder_replaces_whole_and_keeps_old_on_failure(tmp_path):
    target = tmp_path / "set"
    with atomic.atomic_folder(target) as folder:
        (folder / "a.txt").write_text("1")
    with pytest.raises(RuntimeError), atomic.atomic_folder(target) as folder:
        (folder / "a.txt").write_text("2")
        raise RuntimeError("killed")
    assert (target / "a.txt").read_text() == "1"
    with atomic.atomic_folder(target) as folder:
        (folder / "b.txt").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["set"]
