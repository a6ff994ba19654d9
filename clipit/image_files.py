"""Which files are images: the listing that `clipit embed`, `eval` and `search` share."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from clipit.console import warn

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


def list_images(root: Path) -> list[Path]:
    """Image files under `root` (recursive, hidden entries skipped), sorted by relative POSIX path.

    Only regular files (or links to them) are listed: opening a FIFO named `x.jpg` would block forever.
    A broken link stays in, to be reported as unreadable like any other file that cannot be opened."""
    root = Path(root)
    found: list[tuple[str, Path]] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                path = Path(folder) / name
                if _is_special_file(path):
                    warn(f"skipping {path}: not a regular file")
                    continue
                found.append((path.relative_to(root).as_posix(), path))
    return [path for _, path in sorted(found)]


def iter_images(root: Path) -> Iterator[Path]:
    """The files of `list_images(root)`, in the same order, one folder in memory at a time.

    A depth-first walk whose entries are sorted with a folder's name read as `name/`: everything under
    an entry then sorts after every earlier entry's paths and before every later one's, so the walk
    yields the sorted relative POSIX paths without listing the whole tree first."""
    yield from _walk(Path(root))


def _walk(folder: Path) -> Iterator[Path]:
    try:
        scanned = list(os.scandir(folder))
    except OSError:
        return  # os.walk skips unreadable folders too
    entries: list[tuple[str, Path, bool]] = []
    for entry in scanned:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            if not entry.is_symlink():  # like os.walk: a link to a folder is not followed
                entries.append((entry.name + "/", Path(entry.path), True))
        elif Path(entry.name).suffix.lower() in IMAGE_EXTENSIONS:
            entries.append((entry.name, Path(entry.path), False))
    for _, path, is_dir in sorted(entries):
        if is_dir:
            yield from _walk(path)
        elif _is_special_file(path):
            warn(f"skipping {path}: not a regular file")
        else:
            yield path


def _is_special_file(path: Path) -> bool:
    try:
        return not stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False
