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

Manifests of millions of rows are streamed: `iter_batches` reads and checks `BATCH_ROWS` rows at a time,
`Writer` writes row groups of `ROW_GROUP_ROWS` rows into a temporary file renamed into place on success, and
`check_unique_keys` proves keys unique across files from 8-byte hashes of them (8 bytes a row, not a set
of strings). `read` and `write` hold a whole table and suit small manifests.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from clipit import atomic
from clipit.data import string_ids
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
# Arrow's default allocator on Linux (mimalloc) keeps freed batches' memory in per-thread heaps: reading
# a manifest of 320k rows batch by batch grew the process by ~50 MB more than with jemalloc, which
# returns it. Use jemalloc where this pyarrow has it, unless the user chose a pool.
if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
    with contextlib.suppress(NotImplementedError):
        pa.set_memory_pool(pa.jemalloc_memory_pool())

# Rows per streamed batch: readers turn a batch into Python values (about 1 KB a row), so a few MB.
BATCH_ROWS = 8_192
# Rows per written row group (held as Arrow data until written, and what a reader decodes at once: a
# few MB). A manifest under this size is one row group, as `write` makes it.
ROW_GROUP_ROWS = 16_384

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


def open_file(path: str | Path) -> pq.ParquetFile:
    """Open a manifest for streaming; its version, columns and types are checked, its values by
    `iter_batches`. A folder means `<folder>/manifest.parquet`."""
    path = _file_of(path)
    try:
        file = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ManifestError(
            f"{path}: not a readable Parquet file ({exc})", "delete it and rerun the stage"
        ) from None
    _check_version(file.schema_arrow, path)
    validate(file.schema_arrow.empty_table(), path)
    return file


def iter_batches(
    path: str | Path, columns: Sequence[str] | None = None, batch_size: int = BATCH_ROWS
) -> Iterator[pa.Table]:
    """The manifest's rows, `batch_size` at a time, checked and cast like `read` (keys are unique
    within a batch; `check_unique_keys` proves them unique across the file). `columns`: only these."""
    path = _file_of(path)
    file = open_file(path)
    wanted = list(COLUMNS if columns is None else columns)
    unknown = [name for name in wanted if name not in COLUMNS]
    if unknown:
        raise ValueError(f"not manifest columns: {unknown}")
    present = [name for name in wanted if name in file.schema_arrow.names]
    first = 0
    for batch in _batches(path, file.num_row_groups, batch_size, present):
        table = pa.Table.from_batches([batch], schema=batch.schema)
        for name in wanted:
            if name not in present:  # a column newer than the file's version: null
                table = table.append_column(name, pa.nulls(table.num_rows, SCHEMA.field(name).type))
        table = table.select(wanted)
        table = validate(table, path, first) if columns is None else _checked(table, path, first)
        first += table.num_rows
        yield table


def _batches(
    path: Path, groups: int | Sequence[int], batch_size: int, columns: list[str]
) -> Iterator[pa.RecordBatch]:
    """Record batches of some row groups (all of the first `groups` when it is a count).

    The file is opened again for each row group: a reader kept open across row groups holds on to
    Arrow memory for every group it has read (measured: about 36 bytes a row), which is what a
    streamed manifest of millions of rows must not do.
    """
    for group in range(groups) if isinstance(groups, int) else groups:
        file = pq.ParquetFile(path)
        yield from file.iter_batches(batch_size=batch_size, row_groups=[group], columns=columns)
        del file


def read_rows(path: str | Path, rows: np.ndarray, columns: Sequence[str] | None = None) -> pa.Table:
    """Some rows of a manifest (`rows`: ascending row numbers), in that order, cast like `iter_batches`.

    Only the row groups holding them are read, each in batches, so a job that needs a few thousand
    rows of a large manifest never holds the whole file.
    """
    path = _file_of(path)
    file = open_file(path)
    wanted = list(COLUMNS if columns is None else columns)
    present = [name for name in wanted if name in file.schema_arrow.names]
    sizes = [file.metadata.row_group(g).num_rows for g in range(file.num_row_groups)]
    starts = np.cumsum([0, *sizes])
    rows = np.asarray(rows, np.int64)
    parts: list[pa.Table] = []
    for group in np.unique(np.searchsorted(starts, rows, side="right") - 1).tolist():
        first = int(starts[group])
        for batch in _batches(path, [group], BATCH_ROWS, present):
            inside = rows[(rows >= first) & (rows < first + batch.num_rows)] - first
            if inside.size:
                parts.append(pa.Table.from_batches([batch]).take(inside))
            first += batch.num_rows
    schema = pa.schema([file.schema_arrow.field(name) for name in present])
    table = pa.concat_tables(parts) if parts else schema.empty_table()
    for name in wanted:
        if name not in present:
            table = table.append_column(name, pa.nulls(table.num_rows, SCHEMA.field(name).type))
    return _checked(table.select(wanted), path, 0)


def check_unique_keys(paths: Sequence[str | Path]) -> None:
    """Keys unique within and across manifests, as `read` and `merge` require, in memory of 8 bytes a row.

    Keys are compared by a 64-bit hash; the rare equal hashes are checked against the keys themselves,
    so two different keys are never reported as one.
    """
    files = [_file_of(p) for p in paths]
    ids = np.concatenate(
        [np.zeros(0, np.uint64)]
        + [string_ids.of(t.column("key")) for f in files for t in iter_batches(f, ["key"])]
    )
    ids.sort()
    same = ids[1:] == ids[:-1]
    if not same.any():
        return
    suspects = set(ids[1:][same].tolist())
    del ids, same
    seen: dict[str, int] = {}  # key -> the position of its file in `files`
    for position, path in enumerate(files):
        row = 0
        for table in iter_batches(path, ["key"]):
            batch_ids = string_ids.of(table.column("key"))
            for offset in np.flatnonzero(np.isin(batch_ids, list(suspects))).tolist():
                key = table.column("key")[offset].as_py()
                if seen.get(key) == position:
                    raise ManifestError(
                        f"{path}: row {row + offset}: duplicate key {key!r}", "keys must be unique"
                    )
                if key in seen:
                    raise ManifestError(
                        f"key {key!r} is in both {files[seen[key]]} and {path}", "merge each source once"
                    )
                seen[key] = position
            row += table.num_rows


class Writer:
    """Writes a manifest batch by batch (see `writer`): row groups of `ROW_GROUP_ROWS` rows."""

    def __init__(self, file: pq.ParquetWriter, path: Path, row_group_size: int):
        self._file, self._path, self._size = file, path, row_group_size
        self._pending: list[pa.Table] = []
        self._rows = 0  # pending rows
        self.written = 0  # rows written or pending

    def write(self, table: pa.Table) -> None:
        """Append rows (a manifest table, or one from `from_rows`); checked like `validate`."""
        table = validate(table, self._path, self.written)
        self.written += table.num_rows
        self._pending.append(table)
        self._rows += table.num_rows
        while self._rows >= self._size:
            self._flush(self._size)

    def write_rows(self, rows: Iterable[Mapping[str, Any]]) -> None:
        self.write(_unchecked(rows))

    def _flush(self, count: int) -> None:
        # one contiguous row group of exactly `count` rows: the bytes never depend on how rows came in
        pending = pa.concat_tables(self._pending).combine_chunks()
        self._file.write_table(pending.slice(0, count).replace_schema_metadata(SCHEMA.metadata))
        rest = pending.slice(count)
        self._pending, self._rows = ([rest] if rest.num_rows else []), rest.num_rows

    def close(self) -> None:
        if not self.written:  # an empty manifest, as `write` makes it
            self._file.write_table(SCHEMA.empty_table())
        elif self._rows:
            self._flush(self._rows)
        self._file.close()


@contextlib.contextmanager
def writer(path: str | Path, row_group_size: int = ROW_GROUP_ROWS) -> Iterator[Writer]:
    """Write a manifest in batches: a temporary file beside `path`, renamed into place only when the
    block ends without an error (a kill or an error leaves any earlier file as it was)."""
    path = Path(path)
    with atomic.atomic_path(path) as tmp:
        file = pq.ParquetWriter(tmp, SCHEMA)
        out = Writer(file, path, row_group_size)
        try:
            yield out
        except BaseException:
            file.close()
            raise
        out.close()
