"""One writer per shards folder: a second `clipit build-shards` on a folder being written is refused
(exit 2, nothing of the first run touched), and a run killed with -9 leaves no lock that blocks a rerun."""

from __future__ import annotations

import signal

import pytest

from clipit.data import shard_format
from tests.support.folder_race import frozen_while_holding, holder_pid, run, start

SETTINGS = ["--set", "data.shards.workers=0", "--set", "data.shards.image_side=32"]


def build_args(source, out, rows_per_shard: int) -> list[str]:
    return [
        "build-shards",
        "--out",
        str(out),
        str(source),
        *SETTINGS,
        "--set",
        f"data.shards.rows_per_shard={rows_per_shard}",
    ]


def outputs(folder) -> dict[str, bytes]:
    """Every file a build writes, except the resolved config (it names the output folder)."""
    return {
        p.name: p.read_bytes()
        for p in sorted(folder.iterdir())
        if p.suffix == ".parquet" or p.name == "summary.json"
    }


@pytest.mark.slow
def test_a_second_build_on_the_same_folder_is_refused(synthetic_source, tmp_path):
    reference = tmp_path / "reference"
    assert run(*build_args(synthetic_source, reference, 8)).returncode == 0
    out = tmp_path / "shards"
    first = start(*build_args(synthetic_source, out, 8))
    with frozen_while_holding(first, out):
        # other shard sizes: two writers would leave both sets of shards, every row twice
        second = run(*build_args(synthetic_source, out, 5))
    assert second.returncode == 2, second.stderr
    lines = [line for line in second.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, second.stderr
    assert lines[0].startswith(f"error: clipit build-shards (pid {first.pid} on ")
    assert f"is already writing to {out}" in lines[0]
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert outputs(out) == outputs(reference)
    rows = sum(shard_format.count_rows(out, split) for split in ("train", "val"))
    assert rows == sum(shard_format.count_rows(reference, split) for split in ("train", "val")) > 0


@pytest.mark.slow
def test_a_build_killed_with_9_does_not_block_the_rerun(synthetic_source, tmp_path):
    reference = tmp_path / "reference"
    assert run(*build_args(synthetic_source, reference, 8)).returncode == 0
    out = tmp_path / "shards"
    first = start(*build_args(synthetic_source, out, 8))
    with frozen_while_holding(first, out):
        first.send_signal(signal.SIGKILL)  # while it holds the lock, part-way through its work
        first.communicate()
    assert first.returncode == -signal.SIGKILL
    assert holder_pid(out) == first.pid  # its record is left behind, its lock is not
    rerun = run(*build_args(synthetic_source, out, 8))
    assert rerun.returncode == 0, rerun.stderr
    assert outputs(out) == outputs(reference)
