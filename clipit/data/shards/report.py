"""The build summary: counts per source, per split (images and caption rows) and per filter reason."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
from rich.table import Table

from clipit.data import manifest, string_ids
from clipit.data.shards import exclude


class Tally:
    """The summary's counts, added batch by batch as the final manifest is written (bounded memory: the
    distinct images per split are 64-bit ids of their SHA-256s in numpy arrays, 8 bytes an ok row)."""

    def __init__(self) -> None:
        self._per_source: dict[str, _Counts] = {}
        self._total = _Counts()

    def add(self, table: pa.Table) -> None:
        rows = table.select(["source", "status", "error", "split", "image_sha256"]).to_pylist()
        by_source: dict[str, list[dict]] = {}
        for row in rows:
            by_source.setdefault(row["source"], []).append(row)
        for source, group in by_source.items():
            self._per_source.setdefault(source, _Counts()).add(group)
        self._total.add(rows)

    def summarize(
        self,
        folders: list[Path],
        jobs: list,
        excluded: exclude.ExcludeIndex | None = None,
        same_bytes: int = 0,
    ) -> dict:
        """Deterministic counts (no times): the same inputs give the same summary.json bytes.

        `same_bytes`: the eval_overlap rows removed by SHA-256 (the others were near-duplicates by pHash).
        """
        overlap = self._total.reasons[exclude.EVAL_OVERLAP]
        return {
            "sources": [str(f) for f in folders],
            **self._total.counts(),
            "per_source": {source: counts.counts() for source, counts in self._per_source.items()},
            "shards": {split: [j.name for j in jobs if j.split == split] for split in manifest.SPLITS},
            "eval_overlap": {
                "exclude": [str(p) for p in excluded.entries] if excluded else [],
                "exclude_images": excluded.images if excluded else 0,
                "rows": overlap,
                "same_bytes": same_bytes,
                "near_duplicate": overlap - same_bytes,
            },
        }


class _Counts:
    def __init__(self) -> None:
        self.rows = self.ok = self.failed = 0
        self.split = dict.fromkeys(manifest.SPLITS, 0)
        self.reasons: Counter[str] = Counter()
        self.images: dict[str, list[np.ndarray]] = {split: [] for split in manifest.SPLITS}

    def add(self, rows: list[dict]) -> None:
        self.rows += len(rows)
        ok = [r for r in rows if r["status"] == manifest.STATUS_OK]
        self.ok += len(ok)
        self.failed += sum(r["status"] == manifest.STATUS_FAILED for r in rows)
        self.reasons.update(r["error"] or "unknown" for r in rows if r["status"] == manifest.STATUS_FILTERED)
        for split in manifest.SPLITS:
            shas = [r["image_sha256"] for r in ok if r["split"] == split]
            self.split[split] += len(shas)
            self.images[split].append(np.unique(string_ids.of(shas)))

    def counts(self) -> dict:
        return {
            "rows": self.rows,
            "ok": self.ok,
            **self.split,
            # an image with several captions counts once; the split is by image, so no image is in both
            "images": {
                split: int(np.unique(np.concatenate([np.zeros(0, np.uint64), *found])).size)
                for split, found in self.images.items()
            },
            "failed": self.failed,
            "filtered": dict(sorted(self.reasons.items())),
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
