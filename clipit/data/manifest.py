"""The manifest: one row per image-caption pair, one versioned pyarrow schema, owned here.

Every stage (download, translate, build-shards, train, eval) reads and writes manifests through this
module only. The schema version is stored in the Parquet metadata; a file of another version or with
a missing column is refused with an error that names the file. Writes are atomic.

Where the image lives: `shard` is a path relative to the manifest's folder (a tar of a raw download
or a Parquet training shard) and `index` locates the image inside it (the integer img2dataset key of
a tar member, or the row number in a Parquet shard).

Splits are by image: every caption of one image gets the split of `split_for_image`, a hash of the
image's identity (its SHA-256, else its URL), so a source and build-shards agree, and so do two sources
that share an image. `split_fixed` marks a split a source set on purpose (an evaluation file's images
stay val); build-shards keeps it. Version 1 manifests (without `split_fixed`) are still read.

`read` and `write` hold a whole table and suit small manifests; manifests of millions of rows are
streamed through `clipit.data.manifest_stream`, with this module's schema and checks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from clipit import atomic
from clipit.errors import ManifestError

SCHEMA_VERSION = 2
READABLE_VERSIONS = (b"1", b"2")  # version 1 had no split_fixed column
VERSION_KEY = b"clipit.manifest.version"
MANIFEST_NAME = "manifest.parquet"

STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUS_FILTERED = "filtered"
STATUSES = (STATUS_OK, STATUS_FAILED, STATUS_FILTERED)
SPLITS = ("train", "val")
SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),  # stable and unique: "<source>/<id>"
        pa.field("source", pa.string(), nullable=False),  # cc3m, wit, mscoco-it, synthetic, ...
        pa.field("url", pa.string()),
        pa.field("caption", pa.string()),  # target-language caption (null until translated)
        pa.field("caption_en", pa.string()),
        pa.field("lang", pa.string()),  # language of `caption`
        pa.field("status", pa.string(), nullable=False),  # ok / failed / filtered
        pa.field("error", pa.string()),  # why failed or filtered
        pa.field("split", pa.string(), nullable=False),  # train / val, from a hash of the key
        pa.field("shard", pa.string()),
        pa.field("index", pa.int64()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("image_sha256", pa.string()),
        pa.field("meta", pa.string()),  # JSON object: source-specific labels and ids
        pa.field("split_fixed", pa.bool_()),  # true: the source chose `split` on purpose; keep it
    ],
    metadata={VERSION_KEY: str(SCHEMA_VERSION).encode()},
)
COLUMNS = tuple(SCHEMA.names)
REQUIRED = ("key", "source", "status", "split")
ADDED = ("split_fixed",)  # columns newer than version 1: null when a table lacks them


def split_for_key(key: str, val_fraction: float) -> str:
    """'val' for a stable share of keys: a hash, so a row never changes split between runs."""
    bucket = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2**64
    return "val" if bucket < val_fraction else "train"


def image_identity(sha256: str | None, url: str | None, fallback: str) -> str:
    """What makes two rows the same image: its bytes' SHA-256, else its URL, else `fallback` (e.g. an id)."""
    if sha256:
        return f"sha256:{sha256}"
    return f"url:{url}" if url else fallback


def split_for_image(val_fraction: float, sha256: str | None, url: str | None, fallback: str) -> str:
    """The split of every caption of one image: a hash of its identity, the same in every stage."""
    return split_for_key(image_identity(sha256, url, fallback), val_fraction)


def from_rows(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Build a manifest table from dicts; missing optional columns are null, `meta` may be a dict."""
    table = _unchecked(rows)
    validate(table)
    return table


def _unchecked(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """The table of `rows` in the schema, before `validate` checks its values."""
    columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}
    for i, row in enumerate(rows):
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise ManifestError(
                f"manifest row {i}: unknown columns {sorted(unknown)}", f"columns are {COLUMNS}"
            )
        for name in COLUMNS:
            value = row.get(name)
            if name == "meta" and isinstance(value, Mapping):
                value = json.dumps(value, ensure_ascii=False, sort_keys=True)
            columns[name].append(value)
    return pa.Table.from_pydict(columns, schema=SCHEMA)


def empty() -> pa.Table:
    return SCHEMA.empty_table()


def validate(table: pa.Table, path: str | Path = "manifest", first_row: int = 0) -> pa.Table:
    """Check columns, types and values; return the table cast to the exact schema.

    `first_row`: the row number of the table's first row in its file (a batch of a streamed manifest).
    """
    for name in ADDED:
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, SCHEMA.field(name).type))
    missing = [name for name in COLUMNS if name not in table.column_names]
    if missing:
        raise ManifestError(
            f"{path}: missing column(s) {', '.join(missing)}",
            "write manifests with clipit.data.manifest (or rerun the stage that made this file)",
        )
    extra = [name for name in table.column_names if name not in COLUMNS]
    if extra:
        raise ManifestError(
            f"{path}: unexpected column(s) {', '.join(extra)}", f"a manifest has exactly {COLUMNS}"
        )
    table = _checked(table.select(list(COLUMNS)), path, first_row)
    keys = table.column("key").to_pylist()
    if len(set(keys)) != len(keys):
        seen: set[str] = set()
        dup = next(k for k in keys if k in seen or seen.add(k))
        raise ManifestError(
            f"{path}: row {first_row + keys.index(dup, keys.index(dup) + 1)}: duplicate key {dup!r}",
            "keys must be unique",
        )
    return table


def _checked(table: pa.Table, path: str | Path, first_row: int) -> pa.Table:
    """Required columns filled, types cast to the schema's, status and split values known."""
    for name in REQUIRED:
        if name in table.column_names and table.column(name).null_count:
            row = first_row + table.column(name).to_pylist().index(None)
            raise ManifestError(
                f"{path}: row {row}: '{name}' is empty", "every row needs key, source, status, split"
            )
    try:
        table = table.cast(pa.schema([SCHEMA.field(name) for name in table.column_names]))
    except (ValueError, pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise ManifestError(
            f"{path}: wrong column type: {exc}", "rerun the stage that made this file"
        ) from None
    for column, allowed in (("status", STATUSES), ("split", SPLITS)):
        if column in table.column_names:
            _check_values(table, column, allowed, path, first_row)
    return table


def _check_values(
    table: pa.Table, column: str, allowed: Sequence[str], path: str | Path, first_row: int = 0
) -> None:
    for i, value in enumerate(table.column(column).to_pylist()):
        if value not in allowed:
            raise ManifestError(
                f"{path}: row {first_row + i}: {column} {value!r} is not one of {', '.join(allowed)}"
            )


def write(table: pa.Table, path: str | Path) -> Path:
    """Validate and write atomically (temp file + rename), with the schema version in the metadata."""
    path = Path(path)
    table = validate(table, path).replace_schema_metadata(SCHEMA.metadata)
    with atomic.atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def read(path: str | Path) -> pa.Table:
    """Read and validate a manifest; a folder means `<folder>/manifest.parquet`."""
    path = _file_of(path)
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ManifestError(
            f"{path}: not a readable Parquet file ({exc})", "delete it and rerun the stage"
        ) from None
    _check_version(table.schema, path)
    return validate(table, path)


def _file_of(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist", "run the download or build-shards stage first")
    return path


def _check_version(schema: pa.Schema, path: Path) -> None:
    version = (schema.metadata or {}).get(VERSION_KEY)
    if version is None:
        raise ManifestError(
            f"{path}: no clipit manifest version in its metadata", "write it with clipit.data.manifest"
        )
    if version not in READABLE_VERSIONS:
        raise ManifestError(
            f"{path}: manifest schema version {version.decode()} (this clipit reads version {SCHEMA_VERSION})",
            "rerun the stage that made it with this clipit version",
        )


def merge(tables: Sequence[pa.Table], names: Sequence[str] | None = None) -> pa.Table:
    """Concatenate manifests; a key present in two inputs is an error naming both."""
    names = list(names) if names is not None else [f"manifest {i}" for i in range(len(tables))]
    owner: dict[str, str] = {}
    for table, name in zip(tables, names, strict=True):
        for key in table.column("key").to_pylist():
            if key in owner:
                raise ManifestError(
                    f"key {key!r} is in both {owner[key]} and {name}", "merge each source once"
                )
            owner[key] = name
    if not tables:
        return empty()
    return validate(pa.concat_tables([validate(t, n) for t, n in zip(tables, names, strict=True)]))


def meta_of(row: Mapping[str, Any]) -> dict[str, Any]:
    """The decoded `meta` JSON of a row (empty when null)."""
    text = row.get("meta")
    return json.loads(text) if text else {}
