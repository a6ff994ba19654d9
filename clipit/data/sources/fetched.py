"""What happened to each fetched image, as Arrow tables: img2dataset's per-shard results read back, and
their manifest fields.

A results table has one row per input id (column `row`) and the columns of `SCHEMA`; millions of URLs
stay a few columns of Arrow data (about 100 bytes an image) instead of a Python object each. A source
takes the results of its rows batch by batch (`RowResults.batch`) while it writes its manifest.
"""

from __future__ import annotations

import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROW_COLUMN = "clipit_row"
NOT_FINISHED = "not downloaded: its img2dataset shard did not finish (rerun to retry)"
NO_URL = "no image URL"
RATE_LIMIT_CODES = ("HTTP Error 429", "HTTP Error 503")
SCHEMA = pa.schema(
    [
        ("row", pa.int64()),
        ("ok", pa.bool_()),
        ("error", pa.string()),
        ("shard", pa.string()),  # relative to the source folder
        ("index", pa.int64()),  # the tar member key
        ("width", pa.int64()),  # of the stored (resized) image
        ("height", pa.int64()),
        ("original_width", pa.int64()),
        ("original_height", pa.int64()),
        ("sha256", pa.string()),  # of the downloaded bytes, before resizing
    ]
)
_I2D_COLUMNS = [
    "key",
    "status",
    "error_message",
    "width",
    "height",
    "original_width",
    "original_height",
    "sha256",
]


@dataclass(frozen=True)
class Fetched:
    """One result built by hand (a local image file); `table` turns a list of them into a results table."""

    ok: bool
    error: str | None = None
    shard: str | None = None
    index: int | None = None
    width: int | None = None
    height: int | None = None
    original_width: int | None = None
    original_height: int | None = None
    sha256: str | None = None


def table(results: list[Fetched]) -> pa.Table:
    """The results table of `results`, row ids their positions."""
    return pa.Table.from_pylist([{"row": i, **asdict(r)} for i, r in enumerate(results)], schema=SCHEMA)


def manifest_fields(result: dict[str, Any]) -> dict[str, Any]:
    """The manifest columns a result (a row of a results table) fills: status, error, where the image is."""
    return {
        "status": "ok" if result["ok"] else "failed",
        "error": result["error"],
        "shard": result["shard"],
        "index": result["index"],
        "width": result["width"],
        "height": result["height"],
        "image_sha256": result["sha256"],
    }


def meta(result: dict[str, Any]) -> dict[str, Any]:
    """What a result adds to a manifest row's `meta`: the size before resizing, when there is an image."""
    if not result["ok"]:
        return {}
    return {"original_width": result["original_width"], "original_height": result["original_height"]}


def rate_limited(results: pa.Table) -> np.ndarray:
    """Row ids of the results refused with HTTP 429/503 (rate limits)."""
    error = results.column("error")
    hit = pc.or_(*(pc.match_substring(error, code) for code in RATE_LIMIT_CODES))
    mask = pc.and_(pc.invert(results.column("ok")), pc.fill_null(hit, False))
    return results.column("row").filter(mask).to_numpy()


def replace(results: pa.Table, retried: pa.Table) -> pa.Table:
    """`results` (row ids 0..n-1 in order) with the rows of `retried` put in place of theirs."""
    positions = np.arange(results.num_rows)
    positions[retried.column("row").to_numpy()] = results.num_rows + np.arange(retried.num_rows)
    return pa.concat_tables([results, retried]).take(positions)


def collect(images: Path, row_ids: np.ndarray) -> pa.Table:
    """The results of `row_ids`, in that order, from the finished shards of `images`; a row of an
    unfinished shard is a failure saying so."""
    parts = [_shard_results(images, stats) for stats in sorted(images.glob("*_stats.json"))]
    found = pa.concat_tables(parts) if parts else SCHEMA.empty_table()
    ids = pa.array(np.asarray(row_ids, np.int64))
    taken = found.take(pc.index_in(ids, value_set=found.column("row")))  # null where unfinished
    missing = pc.is_null(taken.column("ok"))
    columns = {name: taken.column(name) for name in SCHEMA.names}
    columns["row"] = ids
    columns["ok"] = pc.fill_null(columns["ok"], False)
    columns["error"] = pc.if_else(missing, NOT_FINISHED, columns["error"])
    return pa.table(columns, schema=SCHEMA)


def _shard_results(images: Path, stats: Path) -> pa.Table:
    shard_id = stats.name.split("_")[0]
    tar = images / f"{shard_id}.tar"
    read = pq.read_table(images / f"{shard_id}.parquet", columns=[ROW_COLUMN, *_I2D_COLUMNS])
    members = _tar_member_keys(tar)
    shard = f"{images.name}/{tar.name}"
    rows = []
    for row in read.to_pylist():  # one shard: a few thousand rows at most
        status, key = row["status"], int(row["key"])
        result = {"row": row[ROW_COLUMN], "ok": False}
        if status == "success" and key in members:
            result.update(ok=True, shard=shard, index=key, sha256=row["sha256"],
                          **{k: row[k] for k in ("width", "height", "original_width", "original_height")})  # fmt: skip
        elif status == "success":
            result["error"] = f"download: image missing from {shard}"
        else:
            stage = "decode" if status == "failed_to_resize" else "download"
            result["error"] = f"{stage}: {row['error_message'] or status}"
        rows.append(result)
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def _tar_member_keys(tar: Path) -> set[int]:
    """Integer keys of the images in a tar (member names `{key}.jpg`)."""
    try:
        with tarfile.open(tar) as archive:
            return {int(name.split(".")[0]) for name in archive.getnames() if name.endswith(".jpg")}
    except (OSError, tarfile.TarError, ValueError):
        return set()  # unreadable tar: its rows become failures instead of pointing at nothing


class RowResults:
    """The result of every input row: `by_image` (a results table, row ids 0..n-1) looked up through
    `image_of_row` (per input row, the position of its image; null: the row has no URL)."""

    def __init__(self, by_image: pa.Table, image_of_row: pa.Array | pa.ChunkedArray):
        self.by_image, self.image_of_row = by_image, image_of_row

    def __len__(self) -> int:
        return len(self.image_of_row)

    def batch(self, start: int, stop: int) -> list[dict[str, Any]]:
        """Results of rows start..stop-1 as dicts (a row without URL: a failure saying so)."""
        return self._dicts(self.image_of_row[start:stop])

    def take(self, rows: list[int]) -> list[dict[str, Any]]:
        """Results of some rows, in that order, as dicts."""
        return self._dicts(self.image_of_row.take(pa.array(rows, pa.int64())))

    def _dicts(self, images: pa.Array | pa.ChunkedArray) -> list[dict[str, Any]]:
        taken = self.by_image.take(images).to_pylist()
        return [r if r["ok"] is not None else {**r, "ok": False, "error": NO_URL} for r in taken]
