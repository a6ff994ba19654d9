"""Atomic file writes: write to a temporary file beside the target, then rename over it.

A crash or kill in the middle of a write leaves the old file (or no file) and never a partial one.
Temporary names are `.clipit-NAME.XXXXXX.tmp`: hidden, so listings and globs skip them, and marked, so
`remove_stale_temporaries` deletes the leftovers of clipit's own killed writes and nothing a user or
another program left in the folder (their `.*.tmp` files are not ours to delete).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

TEMP_PREFIX = ".clipit-"  # every temporary name starts with it; nothing else in clipit makes such names
TEMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it replaces `target` atomically."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f"{TEMP_PREFIX}{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent
    )
    os.close(fd)
    os.chmod(tmp_name, 0o666 & ~_current_umask())  # mkstemp makes 0600; a normal file honours the umask
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:  # flush to disk so the rename never exposes an empty file
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_folder(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary folder beside `target`; on success it replaces `target` as a whole.

    Swapping one folder avoids an fsync per file and never leaves a half-written set: a kill leaves
    the old folder (or none) plus a hidden `.clipit-NAME.*.tmp` folder that `remove_stale_temporaries` deletes.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent))
    os.chmod(tmp, 0o777 & ~_current_umask())  # mkdtemp makes 0700; the folder it becomes honours the umask
    try:
        yield tmp
        old = target.with_name(f"{TEMP_PREFIX}{target.name}.old{TEMP_SUFFIX}")
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def follow_umask(path: str | os.PathLike) -> None:
    """Give a file a writer made private (safetensors writes 0600) the mode the umask gives new files."""
    os.chmod(path, 0o666 & ~_current_umask())


def _current_umask() -> int:
    # os.umask can only be read by setting it; reset at once (the window is a few instructions)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | os.PathLike, text: str) -> None:
    write_bytes(target, text.encode("utf-8"))


def remove_stale_temporaries(folder: str | os.PathLike) -> int:
    """Delete leftovers of clipit writes that were killed (`.clipit-*.tmp` files and folders); returns how many.

    A killed `atomic_folder` leaves a folder, so folders are removed as a whole (unlinking one would fail
    and make every rerun fail the same way).
    """
    count = 0
    for path in Path(folder).glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        count += 1
    return count
