"""The training-shard format: Parquet files of pre-resized JPEG bytes plus caption columns.

Owned here, shared by build-shards (writer), the loader, the trainer and eval (readers).

A shards folder holds `train-00000.parquet`, `train-00001.parquet`, ..., `val-00000.parquet`, ...,
`manifest.parquet` (rows with status ok, `shard` = the file name, `index` = the row in it) and
`summary.json`. Row groups are small (a few hundred rows) so a reader can seek to any row cheaply.
The files are plain Parquet: pandas, DuckDB, Spark and BigQuery read them as they are.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from clipit import atomic
from clipit.errors import ManifestError

SHARD_VERSION = 1
VERSION_KEY = b"clipit.shard.version"
SUMMARY_NAME = "summary.json"
_NAME = re.compile(r"^(train|val)-(\d{5})\.parquet$")

SHARD_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("caption", pa.string(), nullable=False),  # target language
        pa.field("caption_en", pa.string()),
        pa.field("image", pa.binary(), nullable=False),  # JPEG bytes, shorter side = shards.image_side
        pa.field("width", pa.int32(), nullable=False),  # of the stored JPEG
        pa.field("height", pa.int32(), nullable=False),
        pa.field("image_sha256", pa.string(), nullable=False),  # of the original image bytes
        pa.field("meta", pa.string()),  # JSON object, as in the manifest
    ],
    metadata={VERSION_KEY: str(SHARD_VERSION).encode()},
)


def shard_name(split: str, number: int) -> str:
    return f"{split}-{number:05d}.parquet"


def write_shard(table: pa.Table, path: str | Path, row_group_size: int = 256) -> Path:
    """Write one shard atomically; the table must match SHARD_SCHEMA."""
    path = Path(path)
    try:
        table = table.select(SHARD_SCHEMA.names).cast(SHARD_SCHEMA)
    except (KeyError, pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ManifestError(f"{path}: rows do not match the shard schema: {exc}") from None
    with atomic.atomic_path(path) as tmp:
        pq.write_table(
            table.replace_schema_metadata(SHARD_SCHEMA.metadata), tmp, row_group_size=row_group_size
        )
    return path


def list_shards(folder: str | Path, split: str) -> list[Path]:
    """The shard files of one split, in order. An empty list when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ManifestError(f"shards folder {folder} does not exist", "run `clipit build-shards` first")
    return sorted(p for p in folder.iterdir() if (m := _NAME.match(p.name)) and m.group(1) == split)


def open_shard(path: str | Path) -> pq.ParquetFile:
    """Open a shard for reading, checking that it is one (and of this format version)."""
    path = Path(path)
    try:
        file = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ManifestError(f"{path}: not a readable shard ({exc})", "rerun `clipit build-shards`") from None
    version = (file.schema_arrow.metadata or {}).get(VERSION_KEY)
    if version != str(SHARD_VERSION).encode():
        raise ManifestError(
            f"{path}: shard format version {version!r} (this clipit reads {SHARD_VERSION})",
            "rebuild the shards with this clipit version",
        )
    return file


def count_rows(folder: str | Path, split: str) -> int:
    return sum(open_shard(p).metadata.num_rows for p in list_shards(folder, split))
