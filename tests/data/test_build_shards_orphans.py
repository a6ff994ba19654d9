"""`kill -9` of `clipit build-shards` with worker processes: the workers stop at once.

An orphaned worker would go on with its shard (minutes for a real one) and the shards queued for it, so
a rerun would write the same shards at the same time. The jobs here take a second or two each (large
images kept at full size) so that a worker still running after a kill is seen.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.processes import session_processes

ROOT = Path(__file__).resolve().parents[2]
CLIPIT = [sys.executable, "-c", "from clipit.cli.main import main; main()"]
CONFIG = """
[data.synthetic]
image_size = 1024
samples_per_shard = 100
zeroshot_per_class = 1
retrieval_images = 2

[data.shards]
image_side = 1024
rows_per_shard = 150
val_fraction = 0.1
workers = 2
"""


@pytest.mark.slow
def test_kill_9_of_build_shards_ends_its_worker_processes(tmp_path):
    (tmp_path / "clipit.toml").write_text(CONFIG)
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "PYTHONPATH": str(ROOT)}  # this checkout's clipit
    download = subprocess.run(
        [*CLIPIT, "download", "synthetic", "--out", "src", "--n", "200", "--seed", "4"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert download.returncode == 0, download.stderr

    records = tmp_path / "shards" / ".build"
    run = subprocess.Popen(
        [*CLIPIT, "build-shards", "--out", "shards", "src"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own session: its workers are found (and cleaned up) by session id
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (records.is_dir() and list(records.glob("*.json"))):  # then both workers are mid-job
            assert run.poll() is None, run.stderr.read()
            assert time.monotonic() < deadline, "no shard finished in time"
            time.sleep(0.005)
        workers = [pid for pid in session_processes(run.pid) if pid != run.pid]
        assert len(workers) >= 2
        os.kill(run.pid, signal.SIGKILL)  # clipit only: its workers must go by themselves
        run.wait(timeout=10)
        assert not (tmp_path / "shards" / "manifest.parquet").exists(), "the run ended before the kill"
        deadline = time.monotonic() + 2.0  # less than a job: a worker that went on would be seen
        while session_processes(run.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert session_processes(run.pid) == [], "build-shards workers outlived clipit"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)
