"""`run(cfg)`: translate a manifest's `caption_en` into `caption`, paying for each text once.

Which rows: status `ok` (a row without an image is never paid for), a non-empty `caption_en`, and a
`caption` that is null or in another language than the target. A caption whose `lang` is empty is in
an unknown language, so possibly a human one in the target language: it is never overwritten. Identical captions (after collapsing
whitespace) are translated once. The cache is consulted first and committed as results arrive, so a
rerun after a kill (or after a finished run) sends requests only for what is still missing.

The manifest is read and written `CHUNK_ROWS` rows at a time (into a temporary file renamed into place
at the end), so memory does not grow with its size: what must span chunks is one 8-byte id per distinct
caption (so a caption repeated in a later chunk is counted once and never resent), the failed captions
and the review sample.

Per-row outcome, written to the manifest at the end (atomically):
- translated: `caption` = the translation, `lang` = target, `meta.translated_by` = the backend (so a
  machine caption is never mistaken for a reference); an `error` left by an earlier failed
  translation ("translate: ...") is cleared.
- failed: `caption` stays null, `error` = "translate: <why>", `status` unchanged (build-shards keeps
  only rows with a caption, so the row waits for the next run rather than being dropped for good).

When more than `max_failed_fraction` of the selected rows failed (a dead endpoint, no network, a
refused key), the run ends with a `TranslationFailed` naming the most common error, after the manifest
is written: what did translate is kept there and in the cache.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from clipit.config.translate import TranslateConfig
from clipit.console import err_console, warn
from clipit.data import manifest, manifest_stream
from clipit.data.translate import review
from clipit.data.translate.cache import TranslationCache
from clipit.data.translate.chunks import Chunks, with_last
from clipit.data.translate.packing import normalise
from clipit.data.translate.providers import provider_spec
from clipit.errors import ClipitError, ConfigError, NetworkError

ERROR_PREFIX = "translate: "
NOT_ATTEMPTED = "not attempted (the run stopped early)"
CHUNK_ROWS = 8_192  # manifest rows read, translated and written at a time


class TranslationFailed(ClipitError):
    """Too many captions failed; the work that succeeded is written and cached."""


@dataclass
class TranslateSummary:
    output: Path
    rows_selected: int = 0  # rows that needed a caption
    rows_translated: int = 0  # of those, filled now
    rows_failed: int = 0
    unique_texts: int = 0  # distinct captions among the selected rows (+ review sample)
    cached: int = 0  # distinct captions found in the cache: no request
    translated: int = 0  # distinct captions translated by the backend in this run
    failed: int = 0  # distinct captions that failed
    requests: int = 0  # HTTP requests (retries included), or model batches for marian
    fallbacks: int = 0  # packs whose reply did not split back (resent one by one)
    seconds: float = 0.0
    review_files: list[Path] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)

    def line(self) -> str:
        text = (
            f"translated {self.translated}, cached {self.cached}, failed {self.failed} "
            f"(unique captions; {self.rows_translated}/{self.rows_selected} rows filled), "
            f"requests sent {self.requests}"
        )
        if self.fallbacks:
            text += f", {self.fallbacks} packs resent one by one"
        return text + f", {self.seconds:.1f} s"


def run(cfg: TranslateConfig) -> TranslateSummary:
    started = time.monotonic()
    if cfg.input is None:
        raise ConfigError(
            "translate.input: no manifest given", "pass --input MANIFEST or set translate.input"
        )
    if not cfg.to.strip():
        raise ConfigError("translate.to: empty target language", "e.g. --to it")
    if cfg.to == cfg.source_lang:
        raise ConfigError(
            f"translate.to: target {cfg.to!r} is the source language", "set --to to another language"
        )
    source_path = Path(cfg.input)
    if source_path.is_dir():
        source_path = source_path / manifest.MANIFEST_NAME
    output = Path(cfg.output).expanduser() if cfg.output is not None else source_path
    _check_writable(output, "--output" if cfg.output is not None else "--input")
    # an unreadable or bad manifest fails before any request: keys, then every value (in batches)
    manifest_stream.check_unique_keys([source_path])
    for _ in manifest_stream.iter_batches(source_path):
        pass
    spec = provider_spec(cfg)  # a bad backend, endpoint or key fails before any work

    summary = TranslateSummary(output=output)
    sample = review.Sample(cfg.to, cfg.sample)
    with (
        TranslationCache(cfg.cache, spec.cache_name, cfg.source_lang, cfg.to) as cache,
        Chunks(cfg, spec, cache, summary) as chunks,
        manifest_stream.writer(output) as out,
    ):
        for table, last in with_last(manifest_stream.iter_batches(source_path, batch_size=CHUNK_ROWS)):
            selected, texts = _select_rows(table, cfg.to)
            summary.rows_selected += len(selected)
            sample.add(table, selected)
            # the sample's captions go with the last chunk's, so a small manifest is one dispatch
            extra = [row["caption_en"] for row in sample.rows()] if last else []
            translations = chunks.translate([*texts.values(), *extra])
            out.write(_fill(table, cfg.to, spec.cache_name, texts, translations, chunks.failed, summary))
        rows = sample.rows()
        sample_translations = cache.lookup(row["caption_en"] for row in rows)
    if rows:
        summary.review_files, summary.scores = review.write_sheet(output, rows, sample_translations)
    summary.seconds = time.monotonic() - started
    if chunks.aborted:
        raise NetworkError(
            f"translation with {spec.name} stopped: {chunks.aborted}; {summary.line()}; {output} written",
            "check --endpoint, the network or the API key, then rerun: finished work is cached and not resent",
        )
    _check_failures(cfg, summary, chunks.failed, output)
    if summary.failed:
        warn(f"{summary.failed} captions failed (see the 'error' column); a rerun retries only those")
    return summary


def _check_writable(output: Path, flag: str) -> None:
    """Before any work: the manifest (and review sheets beside it) can be written where asked."""
    if output.is_dir():
        raise ConfigError(
            f"{flag} {output} is a folder, not a manifest file",
            f"give a file path such as {output / 'm.parquet'}",
        )
    folder = output.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the writer creates missing folders: the first existing one must allow it
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{flag} {output} cannot be written: {folder} is not a writable folder",
            "choose another --output or fix the folder's permissions",
        )


def _check_failures(
    cfg: TranslateConfig, summary: TranslateSummary, failed: dict[str, str], output: Path
) -> None:
    """Exit non-zero when more rows failed than the config allows, naming the most common reason."""
    if not summary.rows_selected:
        return
    fraction = summary.rows_failed / summary.rows_selected
    if fraction <= cfg.max_failed_fraction:
        return
    reasons = Counter(failed.values())
    common = reasons.most_common(1)[0][0] if reasons else NOT_ATTEMPTED
    raise TranslationFailed(
        f"translate: {summary.rows_failed} of {summary.rows_selected} rows failed ({fraction:.0%}, more than "
        f"translate.max_failed_fraction = {cfg.max_failed_fraction:g}); most common error: {common}; "
        f"{output} written with the {summary.rows_translated} rows that succeeded",
        "fix the cause (endpoint, network, API key) and rerun: finished translations are cached, not resent",
    )


def _select_rows(table: pa.Table, target: str) -> tuple[list[int], dict[int, str]]:
    """Indices of rows that need a caption, and each one's normalised English text."""
    status = table.column("status").to_pylist()
    captions = table.column("caption").to_pylist()
    langs = table.column("lang").to_pylist()
    english = table.column("caption_en").to_pylist()
    selected: list[int] = []
    texts: dict[int, str] = {}
    for i, (st, caption, lang, en) in enumerate(zip(status, captions, langs, english, strict=True)):
        if st != manifest.STATUS_OK or (caption is not None and (lang == target or not lang)):
            continue
        text = normalise(en) if en else ""
        if text:
            selected.append(i)
            texts[i] = text
    return selected, texts


def _fill(
    table: pa.Table,
    target: str,
    backend: str,
    texts: dict[int, str],
    translations: dict[str, str],
    failed: dict[str, str],
    summary: TranslateSummary,
) -> pa.Table:
    captions = table.column("caption").to_pylist()
    langs = table.column("lang").to_pylist()
    errors = table.column("error").to_pylist()
    metas = table.column("meta").to_pylist()
    for i, text in texts.items():
        if text in translations:
            captions[i], langs[i] = translations[text], target
            meta = json.loads(metas[i]) if metas[i] else {}
            meta[review.TRANSLATED_BY] = backend
            metas[i] = json.dumps(meta, ensure_ascii=False, sort_keys=True)
            if errors[i] is not None and errors[i].startswith(ERROR_PREFIX):
                errors[i] = None
            summary.rows_translated += 1
        else:
            errors[i] = ERROR_PREFIX + failed.get(text, NOT_ATTEMPTED)
            summary.rows_failed += 1
    for name, values in (("caption", captions), ("lang", langs), ("error", errors), ("meta", metas)):
        index = table.schema.get_field_index(name)
        table = table.set_column(index, table.schema.field(name), pa.array(values, pa.string()))
    return table


def report(summary: TranslateSummary) -> None:
    """The summary on stderr (the CLI prints the output path on stdout); lines are never wrapped."""

    def info(text: str) -> None:
        err_console.print(text, markup=False, soft_wrap=True)

    info(summary.line())
    if summary.scores:
        s = summary.scores
        info(f"review sample against {int(s['rows'])} references: chrF {s['chrF']:.1f}, BLEU {s['BLEU']:.1f}")
    for path in summary.review_files:
        info(f"review sheet: {path}")
