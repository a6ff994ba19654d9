"""What build-shards deletes before it writes, and the checks that make that safe.

`check_out` runs before any work: the output folder must be clipit's (see `clipit.data.output_folder`)
and every file named like a shard in it must be one clipit wrote, since `remove_stale` deletes the
shards the current plan does not name (an earlier build's shards would otherwise be read as part of
this one). A file named `train-00042.parquet` that is another tool's Parquet file (readable, without
clipit's shard version) stops the build instead; an unreadable one is a damaged shard and is rebuilt.
"""

from __future__ import annotations

import re
from pathlib import Path

from clipit import atomic
from clipit.data import output_folder, shard_format
from clipit.errors import ClipitError

OPTION = "--out (data.shards.out)"
_SHARD_NAME = re.compile(r"^(train|val)-\d{5}\.parquet$")


def check_out(out: Path) -> None:
    output_folder.check_ours(out, OPTION)
    for path in _shard_named(out):
        if output_folder.is_foreign_parquet(path, shard_format.VERSION_KEY):
            raise output_folder.NotOurFolderError(
                f"{OPTION}: {path} is named like a shard but is not one clipit wrote",
                "move it out of the folder, or choose another folder",
            )


def remove_stale(out: Path, records: Path, planned: set[str]) -> None:
    """Delete killed writes' temporaries, and the shards and records of an earlier plan."""
    atomic.remove_stale_temporaries(out)
    atomic.remove_stale_temporaries(records)
    for path in _shard_named(out):
        if path.name not in planned and not output_folder.is_foreign_parquet(path, shard_format.VERSION_KEY):
            path.unlink()
    for path in records.glob("*.json"):
        if path.name.removesuffix(".json") not in planned:
            path.unlink()


def _shard_named(out: Path) -> list[Path]:
    if not out.is_dir():
        return []
    try:
        return sorted(p for p in out.iterdir() if _SHARD_NAME.match(p.name) and p.is_file())
    except OSError as exc:
        raise ClipitError(
            f"{OPTION}: cannot list {out} ({exc.strerror or exc})", "choose a readable folder"
        ) from None
