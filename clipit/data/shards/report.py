"""The build summary: counts per source, per split and per filter reason, as JSON and as a table."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa
from rich.table import Table

from clipit.data import manifest


def summarize(table: pa.Table, folders: list[Path], jobs: list) -> dict:
    """Deterministic counts (no times): the same inputs give the same summary.json bytes."""
    rows = table.select(["source", "status", "error", "split"]).to_pylist()
    per_source: dict[str, dict] = {}
    for source in dict.fromkeys(r["source"] for r in rows):
        per_source[source] = _counts([r for r in rows if r["source"] == source])
    return {
        "sources": [str(f) for f in folders],
        **_counts(rows),
        "per_source": per_source,
        "shards": {split: [j.name for j in jobs if j.split == split] for split in manifest.SPLITS},
    }


def _counts(rows: list[dict]) -> dict:
    ok = [r for r in rows if r["status"] == manifest.STATUS_OK]
    reasons = Counter(r["error"] or "unknown" for r in rows if r["status"] == manifest.STATUS_FILTERED)
    return {
        "rows": len(rows),
        "ok": len(ok),
        "train": sum(r["split"] == "train" for r in ok),
        "val": sum(r["split"] == "val" for r in ok),
        "failed": sum(r["status"] == manifest.STATUS_FAILED for r in rows),
        "filtered": dict(sorted(reasons.items())),
    }


def summary_table(summary: dict) -> Table:
    """One column per source plus the total; one row per count, then one per filter reason.

    Reasons go down rather than across, so the table stays readable at 80 columns with many of them.
    """
    columns = [*summary["per_source"].items(), ("total", summary)]
    table = Table(title=f"build-shards: {summary['ok']} of {summary['rows']} rows in shards")
    table.add_column("")
    for name, _ in columns:
        table.add_column(name, justify="right")
    for count in ("rows", "ok", "train", "val", "failed"):
        table.add_row(count, *(str(c[count]) for _, c in columns), end_section=count == "failed")
    for reason in sorted(summary["filtered"]):
        table.add_row(f"filtered: {reason}", *(str(c["filtered"].get(reason, 0)) for _, c in columns))
    return table
