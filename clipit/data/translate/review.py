"""`--sample N`: a review sheet (CSV + HTML) of machine translations for people to rate.

The sample is N rows chosen by a hash of their key, so the same rows come back on every run (a rating
started yesterday still matches). Candidates: rows being translated, rows translated by an earlier run
(their translation comes from the cache), and rows whose source gave a caption in the target language
(MSCOCO-IT, the synthetic set): their English is translated for the sheet only (through the cache, so
once) and the source's caption is the reference. A caption we translated (`meta.translated_by`) is
never used as a reference. Where references exist, corpus chrF and
BLEU (sacrebleu, default settings) are computed over those rows and shown at the top of the HTML.

Captions come from the web, and a spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` as a
formula: in the CSV such cells (and ones starting with a tab or carriage return) get a leading `'`,
as OWASP's CSV-injection rule says, which spreadsheets show as text and hide.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from clipit import atomic
from clipit.data import manifest
from clipit.data.translate.packing import normalise

TRANSLATED_BY = "translated_by"  # meta key set on rows whose caption is a machine translation
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
COLUMNS = ("key", "caption_en", "machine_translation", "reference", "rating_1_to_5", "comment")


def review_paths(output: Path) -> tuple[Path, Path]:
    stem = output.name.removesuffix(".parquet")
    return output.with_name(f"{stem}.review.csv"), output.with_name(f"{stem}.review.html")


class Sample:
    """Up to `n` rows, chosen batch by batch: ones being translated, and ones whose existing caption can
    be a reference. Only the `n` best so far are kept, so a manifest of any size costs `n` rows."""

    def __init__(self, target: str, n: int):
        self.target, self.n = target, n
        self._best: list[tuple[bytes, dict[str, Any]]] = []  # (sha256 of the key, row), best first

    def add(self, table: pa.Table, selected: Sequence[int]) -> None:
        """One batch of manifest rows; `selected`: the batch's row numbers being translated."""
        if self.n <= 0:
            return
        wanted = set(selected)
        columns = {
            name: table.column(name).to_pylist()
            for name in ("key", "caption", "caption_en", "lang", "status", "meta")
        }
        for i, key in enumerate(columns["key"]):
            english = normalise(columns["caption_en"][i] or "")
            if not english or columns["status"][i] != manifest.STATUS_OK:
                continue
            in_target = columns["caption"][i] is not None and columns["lang"][i] == self.target
            if i in wanted or in_target:
                machine = TRANSLATED_BY in json.loads(columns["meta"][i] or "{}")
                reference = columns["caption"][i] if in_target and not machine else None
                row = {"key": key, "caption_en": english, "reference": reference}
                self._best.append((hashlib.sha256(key.encode("utf-8")).digest(), row))
        self._best.sort(key=lambda item: item[0])
        del self._best[self.n :]

    def rows(self) -> list[dict[str, Any]]:
        return sorted((row for _, row in self._best), key=lambda row: row["key"])


def scores(pairs: Sequence[tuple[str, str]]) -> dict[str, float]:
    """Corpus chrF and BLEU of (hypothesis, reference) pairs."""
    if not pairs:
        return {}
    import sacrebleu

    hypotheses = [h for h, _ in pairs]
    references = [[r for _, r in pairs]]
    return {
        "chrF": float(sacrebleu.corpus_chrf(hypotheses, references).score),
        "BLEU": float(sacrebleu.corpus_bleu(hypotheses, references).score),
        "rows": float(len(pairs)),
    }


def write_sheet(
    output: Path, sample: Sequence[dict[str, Any]], translations: dict[str, str]
) -> tuple[list[Path], dict[str, float]]:
    rows = [
        {
            "key": row["key"],
            "caption_en": row["caption_en"],
            "machine_translation": translations.get(row["caption_en"], ""),
            "reference": row["reference"] or "",
            "rating_1_to_5": "",
            "comment": "",
        }
        for row in sample
    ]
    result = scores(
        [
            (r["machine_translation"], r["reference"])
            for r in rows
            if r["reference"] and r["machine_translation"]
        ]
    )
    csv_path, html_path = review_paths(output)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows({name: spreadsheet_safe(value) for name, value in row.items()} for row in rows)
    atomic.write_text(csv_path, buffer.getvalue())
    atomic.write_text(html_path, _html(rows, result))
    return [csv_path, html_path], result


def spreadsheet_safe(value: str) -> str:
    """A cell a spreadsheet shows as text, never evaluates."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _html(rows: Sequence[dict[str, str]], result: dict[str, float]) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(name)}</th>" for name in COLUMNS)
    body = "\n".join(
        "<tr>" + "".join(f"<td>{esc(row[name])}</td>" for name in COLUMNS) + "</tr>" for row in rows
    )
    if result:
        summary = (
            f"<p>Against {int(result['rows'])} references: chrF {result['chrF']:.1f}, "
            f"BLEU {result['BLEU']:.1f} (sacrebleu corpus scores).</p>"
        )
    else:
        summary = "<p>No references in this sample: rate each translation from 1 (wrong) to 5 (perfect).</p>"
    return (
        "<!doctype html>\n<html><head><meta charset='utf-8'><title>Translation review</title>"
        "<style>body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:4px;vertical-align:top}"
        "table{border-collapse:collapse}</style></head><body>\n"
        f"<h1>Translation review ({len(rows)} rows)</h1>\n{summary}\n"
        f"<table><tr>{head}</tr>\n{body}\n</table></body></html>\n"
    )
