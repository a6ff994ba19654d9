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


def summarize(table: pa.Table, source: str, **extra: Any) -> dict[str, Any]:
    """Counts of a source manifest: rows, per status, failures and filters by reason."""
    statuses = Counter(table.column("status").to_pylist())
    failures: Counter[str] = Counter()
    filtered: Counter[str] = Counter()
    for status, error in zip(
        table.column("status").to_pylist(), table.column("error").to_pylist(), strict=True
    ):
        if status == manifest.STATUS_FAILED:
            failures[error or "unknown"] += 1
        elif status == manifest.STATUS_FILTERED:
            filtered[error or "unknown"] += 1
    return {
        "source": source,
        "rows": table.num_rows,
        "ok": statuses.get(manifest.STATUS_OK, 0),
        "failed": statuses.get(manifest.STATUS_FAILED, 0),
        "filtered": statuses.get(manifest.STATUS_FILTERED, 0),
        "failed_by_reason": dict(failures.most_common()),
        "filtered_by_reason": dict(filtered.most_common()),
        **extra,
    }


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


def finish(rows: list[dict[str, Any]], folder: Path, source: str, **extra: Any) -> dict[str, Any]:
    """Write `folder/manifest.parquet` and `folder/summary.json` (atomically), show the table, return it."""
    table = manifest.from_rows(rows)
    manifest.write(table, Path(folder) / manifest.MANIFEST_NAME)
    result = summarize(table, source, **extra)
    write(result, folder)
    show(result)
    return result
