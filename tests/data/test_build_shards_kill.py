"""`clipit build-shards` killed with SIGKILL at several points, each rerun going on from the last.

Kill points: as the first shard's record appears, half-way through the shards, and after random short
delays (anywhere from start-up to the last writes). The last rerun must end with the bytes of one clean,
uninterrupted run and leave no temporary file.
"""

from __future__ import annotations

import functools
import random
import signal
import time
from pathlib import Path

import pytest

from clipit.config.data import ShardSettings
from clipit.data import shards, synthetic
from tests.support import clipit_cli
from tests.support.synthetic_source import tiny_synthetic_config
from tests.support.wait import wait_until

SETTINGS = {"image_side": 48, "rows_per_shard": 8, "val_fraction": 0.1, "workers": 0}
SETS = [arg for key, value in SETTINGS.items() for arg in ("--set", f"data.shards.{key}={value}")]


def _records(out: Path, at_least: int):
    return lambda: len(list((out / ".build").glob("*.json"))) >= at_least


@pytest.mark.slow
def test_kills_at_several_points_all_rerun_to_one_clean_result(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the source is named "src" in every run, as summary.json records it
    synthetic.generate(
        tiny_synthetic_config(n=90, image_size=96, samples_per_shard=30, retrieval_images=2), Path("src")
    )
    summary = shards.run(ShardSettings(**SETTINGS), Path("clean"), [Path("src")])
    jobs = sum(len(names) for names in summary["shards"].values())
    assert jobs >= 20
    clean = clipit_cli.tree_bytes(tmp_path / "clean", skip=(".clipit.lock", "config.resolved.toml"))

    out = tmp_path / "killed"
    for ready in (_records(out, 1), _records(out, jobs // 2)):  # each run is a rerun of the killed one
        process = clipit_cli.start("build-shards", "--out", "killed", "src", *SETS, cwd=tmp_path)
        clipit_cli.kill_when(process, ready)
    assert not (out / "manifest.parquet").exists()
    rng = random.Random(0)
    for _ in range(2):
        process = clipit_cli.start("build-shards", "--out", "killed", "src", *SETS, cwd=tmp_path)
        # once the run holds the folder's lock it is writing: kill it at a random point from there
        locked = functools.partial(clipit_cli.holds_lock, out, process)
        wait_until(locked, "build-shards to take the folder's lock", timeout=120)
        time.sleep(rng.uniform(0.0, 3.0))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)

    code, stdout, err = clipit_cli.run("build-shards", "--out", "killed", "src", *SETS, cwd=tmp_path)
    assert code == 0, err
    assert f"{summary['ok']} rows in {jobs} shards: killed" in stdout
    assert clipit_cli.tree_bytes(out) == clean  # shards, records, manifest, summary; no temporary left
