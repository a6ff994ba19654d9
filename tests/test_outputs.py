"""Output paths checked before any work: clipit.outputs."""

from __future__ import annotations

import os

import pytest

from clipit.errors import ClipitError
from clipit.outputs import check_output_dir, check_output_file


def test_writable_paths_pass_and_leave_nothing_behind(tmp_path):
    (tmp_path / "old.json").write_text("{}")
    assert check_output_file(tmp_path / "old.json", "--output") == tmp_path / "old.json"
    check_output_file(tmp_path / "new" / "deeper" / "out.json", "--output")  # folders made at write time
    check_output_dir(tmp_path / "index", "--out")
    check_output_dir(tmp_path, "--out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json"]  # no probe file, no folder made


@pytest.mark.parametrize(
    ("check", "target", "message"),
    [
        (check_output_file, "DIR", "--key {DIR} is a folder"),
        (check_output_file, "FIFO", "--key {FIFO} is not a regular file"),
        (check_output_file, "FILE/x.json", "--key {FILE}/x.json: {FILE} is a file, not a folder"),
        (
            check_output_file,
            "/proc/self/new/x.json",
            "--key /proc/self/new/x.json: cannot write in /proc/self",
        ),
        (check_output_dir, "FILE", "--key {FILE} is not a folder"),
        (check_output_dir, "FILE/sub", "{FILE} is a file, not a folder"),
        (check_output_dir, "/proc/self", "cannot write in /proc/self"),
    ],
)
def test_unwritable_paths_are_one_line_errors(tmp_path, check, target, message):
    places = {"DIR": tmp_path / "dir", "FILE": tmp_path / "file", "FIFO": tmp_path / "fifo"}
    places["DIR"].mkdir()
    places["FILE"].write_text("kept")
    os.mkfifo(places["FIFO"])
    for name, path in places.items():
        target = target.replace(name, str(path))
        message = message.replace("{" + name + "}", str(path))
    with pytest.raises(ClipitError) as caught:
        check(target, "--key")
    assert message in caught.value.one_line() and "\n" not in caught.value.one_line()
    assert places["FILE"].read_text() == "kept"
