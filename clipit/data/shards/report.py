"""The build summary: counts per source, per split (images and caption rows) and per filter reason."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa
from rich.table import Table

from clipit.data import manifest
from clipit.data.shards import exclude


def summarize(
    table: pa.Table,
    folders: list[Path],
    jobs: list,
    excluded: exclude.ExcludeIndex | None = None,
    same_bytes: int = 0,
) -> dict:
    """Deterministic counts (no times): the same inputs give the same summary.json bytes.

    `same_bytes`: the eval_overlap rows removed by SHA-256 (the others were near-duplicates by pHash).
    """
    rows = table.select(["source", "status", "error", "split", "image_sha256"]).to_pylist()
    overlap = sum(r["error"] == exclude.EVAL_OVERLAP for r in rows)
    per_source: dict[str, dict] = {}
    for source in dict.fromkeys(r["source"] for r in rows):
        per_source[source] = _counts([r for r in rows if r["source"] == source])
    return {
        "sources": [str(f) for f in folders],
        **_counts(rows),
        "per_source": per_source,
        "shards": {split: [j.name for j in jobs if j.split == split] for split in manifest.SPLITS},
        "eval_overlap": {
            "exclude": [str(p) for p in excluded.entries] if excluded else [],
            "exclude_images": excluded.images if excluded else 0,
            "rows": overlap,
            "same_bytes": same_bytes,
            "near_duplicate": overlap - same_bytes,
        },
    }


def _counts(rows: list[dict]) -> dict:
    ok = [r for r in rows if r["status"] == manifest.STATUS_OK]
    reasons = Counter(r["error"] or "unknown" for r in rows if r["status"] == manifest.STATUS_FILTERED)
    return {
        "rows": len(rows),
        "ok": len(ok),
        "train": sum(r["split"] == "train" for r in ok),
        "val": sum(r["split"] == "val" for r in ok),
        # an image with several captions counts once; the split is by image, so no image is in both
        "images": {
            split: len({r["image_sha256"] for r in ok if r["split"] == split}) for split in manifest.SPLITS
        },
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
        if count in manifest.SPLITS:
            table.add_row(f"{count} images", *(str(c["images"][count]) for _, c in columns))
    for reason in sorted(summary["filtered"]):
        table.add_row(f"filtered: {reason}", *(str(c["filtered"].get(reason, 0)) for _, c in columns))
    return table


def summary_lines(summary: dict) -> list[str]:
    """Plain lines under the table: each split's images and caption rows, and what --exclude removed."""
    lines = [f"{s}: {summary['images'][s]} images, {summary[s]} caption rows" for s in manifest.SPLITS]
    overlap = summary.get("eval_overlap") or {}
    if overlap.get("exclude_images"):
        lines.append(
            f"eval_overlap: {overlap['rows']} rows removed ({overlap['same_bytes']} same bytes, "
            f"{overlap['near_duplicate']} near-duplicates) against {overlap['exclude_images']} evaluation "
            f"image{'s' if overlap['exclude_images'] != 1 else ''}"
        )
    return lines
