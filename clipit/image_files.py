"""Which files are images: the listing that `clipit embed`, `eval` and `search` share."""

from __future__ import annotations

import os
import stat
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


def _is_special_file(path: Path) -> bool:
    try:
        return not stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False
