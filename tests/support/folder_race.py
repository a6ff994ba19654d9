"""Real processes on one output folder: catch a `clipit` run while it holds the folder's lock.

The first process is frozen (SIGSTOP) as soon as the lock file names it as the holder, so the second
one meets a held lock however fast the first would have finished; SIGCONT lets it finish its work.
`holding_process` is a plain process that takes a folder's lock as a command would and keeps it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from clipit.folder_lock import LOCK_NAME

CLIPIT = [sys.executable, "-m", "clipit.cli.main"]
HOLDER = """
import sys, time
from clipit.folder_lock import hold
with hold(sys.argv[1], sys.argv[2]):
    print("held", flush=True)
    time.sleep(600)
"""


def start(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [*CLIPIT, *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLIPIT, *args], env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )


def holder_pid(folder: Path) -> int | None:
    """The pid the lock file names (None when free or not yet written); read without locking."""
    try:
        return json.loads((folder / LOCK_NAME).read_text() or "{}").get("pid")
    except (OSError, ValueError):
        return None


def wait_for_holder(process: subprocess.Popen, folder: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while holder_pid(folder) != process.pid:
        assert process.poll() is None, (
            f"exited {process.returncode} before taking the lock: {process.communicate()}"
        )
        assert time.monotonic() < deadline, "the first run never took the lock"
        time.sleep(0.002)


@contextlib.contextmanager
def frozen_while_holding(process: subprocess.Popen, folder: Path) -> Iterator[None]:
    """Freeze `process` while it holds `folder`'s lock; let it go on when the block ends."""
    wait_for_holder(process, folder)
    process.send_signal(signal.SIGSTOP)
    try:
        # the file is emptied before the lock is let go: still naming the process means still held
        assert holder_pid(folder) == process.pid, "the first run finished before it could be frozen"
        yield
    finally:
        process.send_signal(signal.SIGCONT)


@contextlib.contextmanager
def holding_process(folder: Path, command: str) -> Iterator[subprocess.Popen]:
    """A process that holds `folder`'s lock as `command` until the block ends (or it is killed)."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder), command], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout.readline() == "held\n"
        yield process
    finally:
        process.kill()
        process.wait()
        process.stdout.close()
