"""`kill -9` of `clipit download synthetic` while its worker processes draw: the workers stop at once.

The pool starts from `PARALLEL_FROM` images; large images make each shard take long enough that a worker
still running after the kill is seen.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

import pytest

from clipit.data.synthetic import PARALLEL_FROM
from tests.support.clipit_cli import CLIPIT
from tests.support.processes import REPO_ROOT as ROOT
from tests.support.processes import cpu_seconds, session_processes
from tests.support.wait import wait_until

CONFIG = """
[data.synthetic]
image_size = 512
samples_per_shard = 500
zeroshot_per_class = 1
retrieval_images = 2
workers = 2
"""


@pytest.mark.slow
def test_kill_9_of_download_synthetic_ends_its_worker_processes(tmp_path):
    (tmp_path / "clipit.toml").write_text(CONFIG)
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "PYTHONPATH": str(ROOT)}  # this checkout's clipit
    run = subprocess.Popen(
        [*CLIPIT, "download", "synthetic", "--out", "src", "--n", str(PARALLEL_FROM)],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own session: its workers are found (and cleaned up) by session id
    )  # fmt: skip
    try:

        def drawing_workers() -> list[int]:
            assert run.poll() is None, run.stderr.read()
            workers = [pid for pid in session_processes(run.pid) if pid != run.pid]
            return workers if len(workers) >= 2 and cpu_seconds(workers) >= 0.5 else []

        wait_until(drawing_workers, "two workers busy drawing", timeout=120, poll=0.01)
        os.kill(run.pid, signal.SIGKILL)  # clipit only: its workers must go by themselves
        run.wait(timeout=10)
        assert not (tmp_path / "src" / "manifest.parquet").exists(), "the run ended before the kill"
        wait_until(lambda: not session_processes(run.pid), "the workers to exit after clipit", timeout=3)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)
