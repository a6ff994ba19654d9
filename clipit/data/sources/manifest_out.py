"""A source's manifest written batch by batch, with the summary's counts taken from each batch.

A source adds its rows one by one as dicts; every `BATCH_ROWS` of them become one Arrow batch, are
checked and written through `manifest_stream.writer` (a temporary file renamed into place when the
block ends without an error: a failed or killed run leaves an earlier manifest as it was) and counted.
At most one batch of rows is ever held as Python objects.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from clipit.data import manifest, manifest_stream
from clipit.data.sources.summary import Counts

BATCH_ROWS = manifest_stream.BATCH_ROWS


class Rows:
    """Collects rows (`add`) and writes them a batch at a time; `counts` holds what has been written."""

    def __init__(self, out: manifest_stream.Writer):
        self._out = out
        self._pending: list[Mapping[str, Any]] = []
        self.counts = Counts()

    def add(self, row: Mapping[str, Any]) -> None:
        self._pending.append(row)
        if len(self._pending) >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        table = manifest.from_rows(self._pending)
        self._out.write(table)
        self.counts.add(table)
        self._pending = []


@contextlib.contextmanager
def writing(folder: Path) -> Iterator[Rows]:
    """Write `folder/manifest.parquet` from the rows added inside the block."""
    with manifest_stream.writer(Path(folder) / manifest.MANIFEST_NAME) as out:
        rows = Rows(out)
        yield rows
        rows.flush()
