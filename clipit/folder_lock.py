"""One writer per output folder: a lock that refuses a second run on the same folder.

Two runs writing one folder interleave their files (two `build-shards` with different shard sizes leave
both sets of shards, every row twice). Each command that writes a folder therefore holds `DIR/.clipit.lock`
with `fcntl.flock` while it writes; a second run finds it held and stops with a `FolderBusyError` (exit 2)
naming the holder's command, pid, host and start time, read from the file.

The kernel drops a flock when its holder's process ends, however it ends: a run killed with `kill -9`
leaves the file behind but not the lock, so the next run takes it at once. The file is never deleted (a
run that deleted it could race one that has it open) and its name matches no data file
(`*.parquet`, `*.tar`, `.clipit-*.tmp`).

A lock is per process: a function that already holds a folder's lock may call another that takes it
again. On a network file system flock is only as good as the server's locking.

Library functions that write take the lock in the middle of their work, after their checks, so they use
`scoped` + `acquire`: the locks acquired during a `scoped` call are released when it returns or raises.
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import functools
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ParamSpec, TypeVar

from clipit.errors import ClipitError

LOCK_NAME = ".clipit.lock"

P = ParamSpec("P")
R = TypeVar("R")

_held: set[Path] = set()  # lock files this process holds
_scope: contextvars.ContextVar[contextlib.ExitStack | None] = contextvars.ContextVar(
    "folder_lock_scope", default=None
)


class FolderBusyError(ClipitError):
    """Another run is writing the same output folder."""


@contextlib.contextmanager
def hold(folder: str | os.PathLike, command: str) -> Iterator[Path]:
    """Hold the write lock of `folder` (created if missing) for the block; yields the lock file's path."""
    folder = Path(folder)
    path = (folder / LOCK_NAME).resolve()
    if path in _held:
        yield path
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ClipitError(
            f"cannot write to {folder}: {exc.strerror or exc}", "choose another output folder"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderBusyError(
                f"{_holder(fd)} is already writing to {folder}",
                "wait for it to finish, or stop it and run again",
            ) from None
        _write_holder(fd, command)
        _held.add(path)
        try:
            yield path
        finally:
            _held.discard(path)
            os.ftruncate(fd, 0)  # an empty file: nobody holds it (the details are only for the message)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def scoped(fn: Callable[P, R]) -> Callable[P, R]:
    """Release the locks that `acquire` takes during a call of `fn` when that call returns or raises."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with contextlib.ExitStack() as stack:
            token = _scope.set(stack)
            try:
                return fn(*args, **kwargs)
            finally:
                _scope.reset(token)

    return wrapper


def acquire(folder: str | os.PathLike, command: str) -> Path:
    """Take the write lock of `folder` until the enclosing `scoped` function returns."""
    stack = _scope.get()
    if stack is None:
        raise RuntimeError("folder_lock.acquire() is only valid inside a @folder_lock.scoped function")
    return stack.enter_context(hold(folder, command))


def _write_holder(fd: int, command: str) -> None:
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    record = {"command": command, "pid": os.getpid(), "host": socket.gethostname(), "started": started}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)


def _holder(fd: int) -> str:
    """'clipit build-shards (pid 123 on host, started ...)' from the lock file, as far as it can be read."""
    try:
        record = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        record = {}
    if not isinstance(record, dict) or "pid" not in record:  # the holder has not written it yet
        return "another clipit run"
    return (
        f"clipit {record.get('command', '?')} (pid {record['pid']} on {record.get('host', '?')}, "
        f"started {record.get('started', '?')})"
    )
