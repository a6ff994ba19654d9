"""Output folders that are not clipit's are refused, and clean-up deletes only clipit's own files.

Through the CLI (CliRunner): an empty path in the config is an error naming the key; a non-empty folder
without clipit's lock or manifest is refused before any work; inside a clipit folder a rerun deletes its
own temporaries and stale shards but not a `.tmp` file of another program, and stops at a file that is
named like a shard but is not one.
"""

from __future__ import annotations

import shutil

import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from clipit.cli.main import app

runner = CliRunner()
FAST = ["--set", "data.shards.workers=0", "--set", "data.shards.image_side=32"]


def foreign_files(folder):
    """Files a user keeps in a folder: a note, another program's temporaries, a Parquet named like a shard."""
    (folder / "notes.tmp").write_text("mine")
    (folder / ".draft.tmp").write_text("mine")
    pq.write_table(pa.table({"x": [1, 2]}), folder / "train-00042.parquet")
    return listing(folder)


def listing(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    return lines[0]


def test_an_empty_output_path_is_a_config_error_and_touches_nothing(synthetic_source, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = foreign_files(tmp_path)
    result = runner.invoke(app, ["build-shards", "--set", "data.shards.out=", str(synthetic_source), *FAST])
    assert "data.shards.out" in one_error_line(result) and "empty path" in result.stderr
    result = runner.invoke(app, ["download", "synthetic", "--set", "data.synthetic.out=", "--n", "4"])
    assert "data.synthetic.out" in one_error_line(result)
    assert listing(tmp_path) == before and sorted(p.name for p in tmp_path.iterdir()) == sorted(before)


def test_a_folder_of_other_files_is_refused_before_any_work(synthetic_source, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = foreign_files(tmp_path)
    for args in (
        ["build-shards", "--out", ".", str(synthetic_source), *FAST],
        ["download", "synthetic", "--out", ".", "--n", "4"],
    ):
        line = one_error_line(runner.invoke(app, args))
        assert "current folder is not empty and holds no clipit output" in line, line
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before)  # not even a lock file
    assert listing(tmp_path) == before


def test_a_rerun_in_a_clipit_folder_deletes_only_clipit_files(synthetic_source, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    build = ["build-shards", "--out", "shards", str(synthetic_source), *FAST]
    assert runner.invoke(app, build).exit_code == 0
    out = tmp_path / "shards"
    foreign_files(out)
    line = one_error_line(runner.invoke(app, build))
    assert "train-00042.parquet is named like a shard but is not one clipit wrote" in line
    assert (out / "train-00042.parquet").is_file()

    (out / "train-00042.parquet").unlink()
    shutil.copy(
        out / "train-00000.parquet", out / "train-00099.parquet"
    )  # a shard of an earlier, larger build
    (out / ".clipit-manifest.parquet.x1.tmp").write_bytes(b"half")  # leftovers of killed clipit writes
    (out / ".clipit-zeroshot.x2.tmp").mkdir()
    assert runner.invoke(app, build).exit_code == 0
    names = {p.name for p in out.iterdir()}
    assert {"notes.tmp", ".draft.tmp"} <= names  # not ours: kept
    assert not names & {"train-00099.parquet", ".clipit-manifest.parquet.x1.tmp", ".clipit-zeroshot.x2.tmp"}

    good = (out / "train-00000.parquet").read_bytes()
    (out / "train-00000.parquet").write_bytes(good[: len(good) // 2])  # footer lost: a damaged shard of ours
    assert runner.invoke(app, build).exit_code == 0
    assert (out / "train-00000.parquet").read_bytes() == good  # rebuilt, not refused
