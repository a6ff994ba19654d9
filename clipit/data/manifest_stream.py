"""Streamed manifests: millions of rows read and written in batches, never held whole.

`iter_batches` reads and checks `BATCH_ROWS` rows at a time; `read_rows` reads some rows by number (only
the row groups that hold them); `writer` writes row groups of `ROW_GROUP_ROWS` rows into a temporary file
renamed into place on success; `check_unique_keys` proves keys unique across files from 8-byte hashes of
them (8 bytes a row, not a set of strings). The schema, its checks and the error messages are
`clipit.data.manifest`'s, which also names these functions.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from clipit import atomic
from clipit.data import manifest, string_ids
from clipit.data.manifest import COLUMNS, SCHEMA, validate
from clipit.errors import ManifestError

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


def open_file(path: str | Path) -> pq.ParquetFile:
    """Open a manifest for streaming; its version, columns and types are checked, its values by
    `iter_batches`. A folder means `<folder>/manifest.parquet`."""
    path = manifest._file_of(path)
    try:
        file = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ManifestError(
            f"{path}: not a readable Parquet file ({exc})", "delete it and rerun the stage"
        ) from None
    manifest._check_version(file.schema_arrow, path)
    validate(file.schema_arrow.empty_table(), path)
    return file


def iter_batches(
    path: str | Path, columns: Sequence[str] | None = None, batch_size: int = BATCH_ROWS
) -> Iterator[pa.Table]:
    """The manifest's rows, `batch_size` at a time, checked and cast like `read` (keys are unique
    within a batch; `check_unique_keys` proves them unique across the file). `columns`: only these."""
    path = manifest._file_of(path)
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
        table = validate(table, path, first) if columns is None else manifest._checked(table, path, first)
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
    path = manifest._file_of(path)
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
    return manifest._checked(table.select(wanted), path, 0)


def check_unique_keys(paths: Sequence[str | Path]) -> None:
    """Keys unique within and across manifests, as `read` and `merge` require, in memory of 8 bytes a row.

    Keys are compared by a 64-bit hash; the rare equal hashes are checked against the keys themselves,
    so two different keys are never reported as one.
    """
    files = [manifest._file_of(p) for p in paths]
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
        self.write(manifest._unchecked(rows))

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
