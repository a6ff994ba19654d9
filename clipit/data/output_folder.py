"""Which output folders are clipit's: a command that cleans up on a rerun only ever deletes its own files.

A rerun deletes what an earlier, killed or different run left behind (stale shards, temporaries). In a
folder that is not clipit's those names may be someone else's files, so the rule is:

- A folder is clipit's when it does not exist yet, is empty, or holds `.clipit.lock` (every command
  that writes a folder leaves it) or a `manifest.parquet` carrying clipit's manifest version.
- `build-shards` and every `download`, which delete files by name on a rerun, refuse any other
  folder before doing any work: exit 2 with a one-line error, nothing touched.
- Inside a clipit folder, clean-up deletes only names clipit makes: `.clipit-*.tmp` temporaries
  (`atomic.remove_stale_temporaries`; only clipit's atomic writes make such names) and each command's
  own output names (build-shards: shard files, unless one is a readable Parquet file without clipit's
  shard version, which stops the build instead).
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from clipit.data import manifest
from clipit.errors import ClipitError
from clipit.folder_lock import LOCK_NAME


class NotOurFolderError(ClipitError):
    """An output folder holds files that clipit did not write."""


def is_ours(folder: str | os.PathLike) -> bool:
    """Whether clipit may write and clean up in `folder` (see the module's rule)."""
    folder = Path(folder)
    if not folder.exists():
        return True
    if not folder.is_dir():
        return False
    names = {p.name for p in folder.iterdir()}
    if not names or LOCK_NAME in names:
        return True
    return manifest.MANIFEST_NAME in names and _has_our_version(
        folder / manifest.MANIFEST_NAME, manifest.VERSION_KEY
    )


def check_ours(folder: str | os.PathLike, option: str) -> Path:
    """Refuse `folder` unless it is clipit's; `option` names where it came from (e.g. `--out (data.shards.out)`)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotOurFolderError(f"{option} {folder} is a file, not a folder", f"choose a folder for {option}")
    if not is_ours(folder):
        shown = "the current folder" if folder.resolve() == Path.cwd().resolve() else str(folder)
        raise NotOurFolderError(
            f"{option}: {shown} is not empty and holds no clipit output ({LOCK_NAME} or {manifest.MANIFEST_NAME}); "
            "a rerun there would delete files by name",
            f"choose a new or empty folder for {option}",
        )
    return folder


def _has_our_version(path: Path, key: bytes) -> bool:
    """Whether a Parquet file's schema metadata has `key` (read from the footer only)."""
    try:
        return key in (pq.read_schema(path).metadata or {})
    except (OSError, pa.ArrowException):
        return False


def is_foreign_parquet(path: str | os.PathLike, key: bytes) -> bool:
    """Whether `path` is a readable Parquet file without clipit's version key `key`: another tool's file.

    A file whose footer cannot be read is not called foreign: in a clipit folder it is a damaged file
    of clipit's (clipit writes atomically, so a kill never leaves one) and is rebuilt.
    """
    try:
        return key not in (pq.read_schema(path).metadata or {})
    except (OSError, pa.ArrowException):
        return False
