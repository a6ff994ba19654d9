"""Waiting for an event with a deadline, instead of sleeping a fixed time and hoping it happened.

A test that kills or interrupts a subprocess must first know the subprocess got somewhere: a file it
writes, a line it prints, a checkpoint folder. These helpers poll for that event and fail with a message
naming it when the deadline passes (a fixed sleep either wastes time or, on a busy machine, is too short).
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The awaited event did not happen before the deadline."""


def wait_until(condition: Callable[[], T], what: str, *, timeout: float = 60.0, poll: float = 0.02) -> T:
    """Call `condition` until it returns something truthy and return that; fail after `timeout` s.

    `what` completes "timed out after N s waiting for ..." (e.g. "the first checkpoint").
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll)


def wait_for_path(path: Path, *, timeout: float = 60.0, process: subprocess.Popen | None = None) -> Path:
    """Wait until `path` exists; with `process`, fail at once if it exits first."""

    def exists() -> bool:
        if process is not None and process.poll() is not None and not path.exists():
            raise WaitTimeout(f"the process exited ({process.returncode}) before {path} appeared")
        return path.exists()

    wait_until(exists, str(path), timeout=timeout)
    return path


class LineWatcher:
    """Collects the lines of a subprocess's stream in a thread, so a test can wait for one of them
    without blocking on a pipe (and without the pipe filling up and stalling the subprocess)."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._closed = False
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line)
        self._closed = True

    def wait_for(self, text: str, *, timeout: float = 60.0) -> str:
        """The first line containing `text`; fails if the stream closes or the deadline passes first."""

        def found() -> str | None:
            hit = next((line for line in self.lines if text in line), None)
            if hit is None and self._closed:
                raise WaitTimeout(f"the stream closed without a line containing {text!r}:\n{self.text()}")
            return hit

        return wait_until(found, f"a line containing {text!r}", timeout=timeout)

    def text(self) -> str:
        return "".join(self.lines)
