"""The end-of-download summary: counts by status and by reason, as JSON in the source folder and a table.

Reasons are the manifest's `error` texts; at CC3M scale there are thousands of distinct ones (DNS errors
name their host), so the table shows the most common and folds the rest into "other reasons".
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
from rich.table import Table

from clipit import atomic
from clipit.console import err_console
from clipit.data import manifest

SUMMARY_NAME = "summary.json"
TOP_REASONS = 15


class Counts:
    """The summary's counts, added batch by batch as a source writes its manifest."""

    def __init__(self) -> None:
        self.rows = 0
        self.statuses: Counter[str] = Counter()
        self.reasons: dict[str, Counter[str]] = {
            manifest.STATUS_FAILED: Counter(),
            manifest.STATUS_FILTERED: Counter(),
        }

    def add(self, table: pa.Table) -> None:
        """Count the rows of a manifest table (or batch)."""
        self.rows += table.num_rows
        statuses, errors = table.column("status").to_pylist(), table.column("error").to_pylist()
        self.statuses.update(statuses)
        for status, error in zip(statuses, errors, strict=True):
            if status in self.reasons:
                self.reasons[status][error or "unknown"] += 1

    def summary(self, source: str, **extra: Any) -> dict[str, Any]:
        """Counts of a source manifest: rows, per status, failures and filters by reason."""
        return {
            "source": source,
            "rows": self.rows,
            "ok": self.statuses.get(manifest.STATUS_OK, 0),
            "failed": self.statuses.get(manifest.STATUS_FAILED, 0),
            "filtered": self.statuses.get(manifest.STATUS_FILTERED, 0),
            "failed_by_reason": dict(self.reasons[manifest.STATUS_FAILED].most_common()),
            "filtered_by_reason": dict(self.reasons[manifest.STATUS_FILTERED].most_common()),
            **extra,
        }


def summarize(table: pa.Table, source: str, **extra: Any) -> dict[str, Any]:
    """Counts of a whole manifest table (see `Counts`)."""
    counts = Counts()
    counts.add(table)
    return counts.summary(source, **extra)


def write(summary: dict[str, Any], folder: Path) -> Path:
    path = Path(folder) / SUMMARY_NAME
    atomic.write_text(path, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return path


def show(summary: dict[str, Any]) -> None:
    """Print the summary as a table on stderr."""
    table = Table(title=f"download {summary['source']}: {summary['rows']} rows", title_justify="left")
    table.add_column("outcome")
    table.add_column("rows", justify="right")
    table.add_column("share", justify="right")
    total = max(summary["rows"], 1)

    def add(label: str, count: int) -> None:
        table.add_row(label, str(count), f"{100 * count / total:.1f}%")

    add("ok", summary["ok"])
    for status in ("failed", "filtered"):
        reasons = list(summary[f"{status}_by_reason"].items())
        add(status, summary[status])
        for reason, count in reasons[:TOP_REASONS]:
            add(f"  {reason}", count)
        if len(reasons) > TOP_REASONS:
            add(f"  other reasons ({len(reasons) - TOP_REASONS})", sum(c for _, c in reasons[TOP_REASONS:]))
    err_console.print(table)


def finish(counts: Counts, folder: Path, source: str, **extra: Any) -> dict[str, Any]:
    """Write `folder/summary.json` (atomically) from a written manifest's counts, show the table, return it."""
    result = counts.summary(source, **extra)
    write(result, folder)
    show(result)
    return result
