"""clipit.parent_watch with real processes: a worker outlives the thread that started it, not the process."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The "worker": watches the pid it is given, then sleeps (as an idle pool worker would).
WORKER = (
    "import sys, time; from clipit.parent_watch import exit_with_parent; "
    "exit_with_parent(int(sys.argv[1])); print('watching', flush=True); time.sleep(60)"
)
# The "parent": starts the worker from a helper thread that exits once the worker watches (as a
# multiprocessing pool's worker-handler thread exits inside terminate()), prints its pid, lives on.
PARENT = f"""
import os, subprocess, sys, threading, time
pids = []
def start():
    worker = subprocess.Popen([sys.executable, "-c", {WORKER!r}, str(os.getpid())], stdout=subprocess.PIPE)
    assert worker.stdout.readline() == b"watching\\n"
    pids.append(worker.pid)
thread = threading.Thread(target=start)
thread.start()
thread.join()
print(pids[0], flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z"
    return False


def test_worker_lives_while_its_parent_does_and_exits_soon_after_a_kill_9():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    try:
        worker = int(parent.stdout.readline())
        time.sleep(1.0)  # several polls after the starting thread exited
        assert _alive(worker), "the worker died while its parent process lives"

        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 5
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(worker), "the worker outlived its parent"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(parent.pid, signal.SIGKILL)
