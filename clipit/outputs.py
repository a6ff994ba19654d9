"""Checks that an output path can be written, made before any work so that none is lost to a bad path.

A command that computes for minutes and then finds its `--output` is a folder, or its folder read-only,
throws the work away. `check_output_file` and `check_output_dir` run first and raise a one-line
`ClipitError` naming the option and the path. Writability is probed by creating (and deleting) a hidden
temporary file, not read from permission bits: that also catches read-only mounts and ACLs, and is
true for root, whom permission bits do not stop.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from clipit.errors import ClipitError


def check_output_file(path: str | os.PathLike, key: str) -> Path:
    """`path` can be (re)written as a file: not a folder or a device, and its folder can be made and written."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ClipitError(f"{key} {path} is a folder", f"pass a file path for {key}, e.g. {path / 'out'}")
    if path.exists() and not path.is_file():
        # A FIFO, socket or device: the atomic write would replace it with a regular file.
        raise ClipitError(f"{key} {path} is not a regular file", f"pass the path of a regular file for {key}")
    _check_creatable(path.parent, key, path)
    return path


def check_output_dir(path: str | os.PathLike, key: str) -> Path:
    """`path` is a writable folder, or one that can be created."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ClipitError(f"{key} {path} is not a folder", f"pass a folder path for {key}")
    _check_creatable(path, key, path)
    return path


def _check_creatable(folder: Path, key: str, target: Path) -> None:
    """Files can be created in `folder`, or in the nearest existing folder above it (which mkdir needs)."""
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ClipitError(
            f"{key} {target}: {existing} is a file, not a folder", f"choose another path for {key}"
        )
    try:
        fd, probe = tempfile.mkstemp(prefix=".clipit-probe.", suffix=".tmp", dir=existing)
    except OSError as exc:
        raise ClipitError(
            f"{key} {target}: cannot write in {existing} ({exc.strerror or exc})",
            f"choose a writable path for {key}",
        ) from None
    os.close(fd)
    os.unlink(probe)
