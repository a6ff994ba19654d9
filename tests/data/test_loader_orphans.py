"""`kill -9` of a process that loads batches with worker processes leaves no worker and no shared memory.

The child (loader_kill_child.py) is a training-like process with `workers = 2`; grain's workers hand
batches over in /dev/shm segments. Only the child itself is killed: its workers must notice and exit,
and the segments they made must then be unlinked (by multiprocessing's resource tracker).
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

from tests.support import loader_data as loader_support
from tests.support.processes import session_processes, shared_memory_of

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("loader_kill_child.py")
SHM = Path("/dev/shm")


@pytest.mark.slow
@pytest.mark.skipif(not SHM.is_dir(), reason="needs Linux /proc and /dev/shm")
def test_kill_9_of_the_loading_process_ends_its_workers_and_frees_their_shared_memory(tmp_path):
    loader_support.write_shards(tmp_path / "shards", [40, 40])
    loader_support.save_tokenizer(tmp_path / "tok")
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(tmp_path / "shards"), str(tmp_path / "tok")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        start_new_session=True,  # its own session: its workers are found (and cleaned up) by session id
    )
    try:
        assert proc.stdout.readline().strip() == "ready", proc.communicate(timeout=60)[1][-3000:]
        processes = session_processes(proc.pid)
        assert len(processes) >= 3  # the child and its two workers (plus multiprocessing's tracker)
        segments = shared_memory_of(processes)
        assert segments, "the workers hand batches over in shared memory"

        os.kill(proc.pid, signal.SIGKILL)  # the child only: its workers must go by themselves
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while (session_processes(proc.pid) or any((SHM / n).exists() for n in segments)) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.1)
        assert session_processes(proc.pid) == [], "loader workers outlived their process"
        assert [n for n in segments if (SHM / n).exists()] == [], "shared memory left in /dev/shm"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
