"""`kill -9` of `clipit build-shards` with worker processes leaves none of them running."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.data.test_loader_orphans import session_processes

CLIPIT = [sys.executable, "-c", "from clipit.cli.main import main; main()"]
CONFIG = """
[data.synthetic]
image_size = 160
samples_per_shard = 100
zeroshot_per_class = 1
retrieval_images = 2

[data.shards]
image_side = 64
rows_per_shard = 4
val_fraction = 0.1
workers = 2
"""


@pytest.mark.slow
def test_kill_9_of_build_shards_ends_its_worker_processes(tmp_path):
    (tmp_path / "clipit.toml").write_text(CONFIG)
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    download = subprocess.run(
        [*CLIPIT, "download", "synthetic", "--out", "src", "--n", "300", "--seed", "4"],
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
        while not (records.is_dir() and len(list(records.glob("*.json"))) >= 2):
            assert run.poll() is None, run.stderr.read()
            assert time.monotonic() < deadline, "no shard finished in time"
            time.sleep(0.005)
        workers = [pid for pid in session_processes(run.pid) if pid != run.pid]
        assert len(workers) >= 2
        os.kill(run.pid, signal.SIGKILL)  # clipit only: its workers must go by themselves
        run.wait(timeout=10)
        assert not (tmp_path / "shards" / "manifest.parquet").exists(), "the run ended before the kill"
        deadline = time.monotonic() + 10
        while session_processes(run.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert session_processes(run.pid) == [], "build-shards workers outlived clipit"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)
