"""Real `clipit` subprocesses for kill tests: start one, kill it when a file appears, compare folders."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from tests.support.wait import WaitTimeout, wait_until

CLIPIT = [sys.executable, "-c", "from clipit.cli.main import main; main()"]


def _command(args: tuple[str, ...], prefix: list[str] | None) -> list[str]:
    return [*(prefix or []), *CLIPIT, *args]


def _env() -> dict[str, str]:
    return {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}


def start(*args: str, cwd: Path) -> subprocess.Popen:
    """A running clipit whose stderr goes to a file: a pipe nobody reads while polling could fill and stall it."""
    err = tempfile.TemporaryFile()
    process = subprocess.Popen(
        _command(args, None), cwd=cwd, env=_env(), stdout=subprocess.DEVNULL, stderr=err
    )
    process.err_file = err  # type: ignore[attr-defined]
    return process


def run(*args: str, cwd: Path, timeout: float = 180, prefix: list[str] | None = None) -> tuple[int, str, str]:
    """Run clipit to the end (optionally under `prefix`, e.g. setpriv); (exit code, stdout, stderr)."""
    done = subprocess.run(_command(args, prefix), cwd=cwd, env=_env(), capture_output=True, timeout=timeout)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def _stderr(process: subprocess.Popen) -> str:
    process.err_file.seek(0)  # type: ignore[attr-defined]
    return process.err_file.read().decode(errors="replace")[-2000:]  # type: ignore[attr-defined]


def kill_when(process: subprocess.Popen, ready: Callable[[], bool], timeout: float = 180) -> None:
    """SIGKILL `process` as soon as `ready()` is true; fails if the process ends first."""

    def reached() -> bool:
        if process.poll() is not None:
            raise AssertionError(
                f"clipit ended (exit {process.returncode}) before the kill point: {_stderr(process)}"
            )
        return ready()

    try:
        wait_until(reached, "the kill point", timeout=timeout, poll=0.002)
    except WaitTimeout:
        process.kill()
        raise
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, _stderr(process)


def holds_lock(folder: Path, process: subprocess.Popen) -> bool:
    """Whether `process` holds `folder`'s write lock (its pid is in the lock's holder record): from then
    on it writes the folder. Fails if the process has ended."""
    if process.poll() is not None:
        raise AssertionError(
            f"clipit ended (exit {process.returncode}) before it took the lock: {_stderr(process)}"
        )
    try:
        record = json.loads((folder / ".clipit.lock").read_text() or "{}")
    except (OSError, ValueError):  # not there yet, or being written
        return False
    return isinstance(record, dict) and record.get("pid") == process.pid


def tree_bytes(
    folder: Path, skip: tuple[str, ...] = (".clipit.lock", "config.resolved.toml")
) -> dict[str, bytes]:
    """Every file under `folder` (hidden ones too) by relative path, except the names in `skip`
    (the lock's holder record, and the resolved config, which names the output folder)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in skip
    }
