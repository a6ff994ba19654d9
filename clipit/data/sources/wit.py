"""WIT (Wikipedia-based Image Text): the gzipped TSVs -> one language's images + manifest.

The TSVs (about 25 GB for all languages) are streamed in chunks; only rows of the wanted language are
kept in memory. Of those, a row is `filtered` (kept in the manifest with the reason, not downloaded)
when its reference description is empty, its image is not JPEG/PNG, or (optional) the description is
mostly proper nouns, which CLIP-Italian also dropped: "Giuseppe Garibaldi" teaches a model little.
Citation markers such as "[27]" are stripped from descriptions.

Keys are `wit/<file name>/<data row>` (0-based, header not counted); the split is drawn from the image URL, so an image that appears on
several pages (one row each) never lands in both train and val. A URL is downloaded once for all its
rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clipit import folder_lock
from clipit.config.data import DownloadSettings, WitSource
from clipit.data import manifest, output_folder
from clipit.data.sources import fetched, img2dataset_run, manifest_out, summary
from clipit.errors import ConfigError, DataError

SOURCE = "wit"
COLUMNS = (
    "language", "page_url", "image_url", "page_title", "section_title", "hierarchical_section_title",
    "caption_reference_description", "caption_attribution_description", "caption_alt_text_description",
    "mime_type", "original_height", "original_width", "is_main_image", "attribution_passes_lang_id",
    "page_changed_recently", "context_page_description", "context_section_description",
)  # fmt: skip
NEEDED = ("language", "image_url", "caption_reference_description", "mime_type", "page_url", "page_title")
IMAGE_TYPES = {"image/jpeg", "image/png"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_CITATION = re.compile(r"\s*\[\s*\d+\s*\]")
_WORD = re.compile(r"[^\W\d_]+")
# Italian (and a few English) function words: neither proper nouns nor content, so not counted.
_FUNCTION_WORDS = frozenset(
    "il lo la i gli le un uno una di del dello della dei degli delle a al allo alla ai agli alle da dal "
    "dallo dalla dai dagli dalle in nel nello nella nei negli nelle con col su sul sullo sulla sui sugli "
    "sulle per tra fra e ed o od che come sono è anche non si the of and in on at to a an".split()
)


def strip_citations(text: str) -> str:
    """'Il Duomo[3] di Milano [27].' -> 'Il Duomo di Milano.'"""
    return " ".join(_CITATION.sub("", text).split())


def proper_noun_fraction(caption: str) -> float:
    """Share of capitalised words among the content words, not counting the sentence-initial word.

    A caption whose only content word opens it ("Roma") counts that word, so it scores 1.
    """
    tokens = _WORD.findall(caption)
    content = [(i, w) for i, w in enumerate(tokens) if w.lower() not in _FUNCTION_WORDS]
    counted = [w for i, w in content if i != 0] or [w for _, w in content]
    if not counted:
        return 0.0
    return sum(w[0].isupper() for w in counted) / len(counted)


def is_jpeg_or_png(mime_type: str, url: str) -> bool:
    if mime_type:
        return mime_type.strip().lower() in IMAGE_TYPES
    return url.lower().split("?")[0].endswith(IMAGE_SUFFIXES)


def filter_reason(caption: str, mime_type: str, url: str, source: WitSource) -> str | None:
    """Why a row of the right language is not downloaded (None: it is)."""
    if not url:
        return "no image URL"
    if not caption:
        return "empty caption_reference_description"
    if not is_jpeg_or_png(mime_type, url):
        return f"not JPEG/PNG ({mime_type or 'unknown type'})"
    if source.proper_noun_filter and proper_noun_fraction(caption) > source.max_proper_noun_fraction:
        return "mostly proper nouns"
    return None


META_COLUMNS = ("page_url", "page_title", "section_title", "mime_type", "is_main_image")  # kept in `meta`


def read_rows(source: WitSource) -> tuple[list[dict[str, Any]], int]:
    """Rows of `source.lang` from every TSV (cleaned, with a filter reason and the whole `record`), and
    how many rows were read. For a look at a few rows: `read_table` holds many in far less memory."""
    table, read = read_table(source, COLUMNS)
    rows = [
        {"file": r.pop("file"), "row": r.pop("row"), "caption": r.pop("caption"), "url": r.pop("url"),
         "reason": r.pop("reason"), "record": r}
        for r in table.to_pylist()
    ]  # fmt: skip
    return rows, read


def read_table(source: WitSource, columns: tuple[str, ...] = META_COLUMNS) -> tuple[pa.Table, int]:
    """Rows of `source.lang` from every TSV as columns: file, row (0-based data row), caption (cleaned),
    url, reason (why filtered, null: kept) and the TSV's `columns`; and how many rows were read."""
    parts: list[pa.Table] = []
    read = kept = 0
    for path in source.tsv:
        for first_row, batch in _chunks(Path(path)):
            read += batch.num_rows
            mask = pc.equal(batch.column("language"), source.lang)
            numbers = (np.flatnonzero(mask.to_numpy(zero_copy_only=False)) + first_row).tolist()
            batch = batch.filter(mask)
            captions = [strip_citations(c) for c in batch.column("caption_reference_description").to_pylist()]
            urls = [u.strip() for u in batch.column("image_url").to_pylist()]
            mimes = batch.column("mime_type").to_pylist()
            reasons = [filter_reason(c, m, u, source) for c, m, u in zip(captions, mimes, urls, strict=True)]
            size = len(reasons)
            if source.limit is not None:  # stop at the row that makes `limit` kept rows
                for i, reason in enumerate(reasons):
                    kept += reason is None
                    if kept >= source.limit:
                        size = i + 1
                        break
            part = {"file": [Path(path).name] * size, "row": numbers[:size], "caption": captions[:size],
                    "url": urls[:size], "reason": reasons[:size]}  # fmt: skip
            for name in columns:  # a column the TSV lacks is null
                have = name in batch.column_names
                part[name] = batch.column(name).slice(0, size) if have else pa.nulls(size, pa.string())
            parts.append(pa.table(part))
            if source.limit is not None and kept >= source.limit:
                return _concat(parts, columns), read
    return _concat(parts, columns), read


def _concat(parts: list[pa.Table], columns: tuple[str, ...]) -> pa.Table:
    schema = pa.schema(
        [("file", pa.string()), ("row", pa.int64()), ("caption", pa.string()), ("url", pa.string()),
         ("reason", pa.string()), *((name, pa.string()) for name in columns)]
    )  # fmt: skip
    return pa.concat_tables([p.cast(schema) for p in parts]) if parts else schema.empty_table()


def _chunks(path: Path) -> Iterator[tuple[int, pa.Table]]:
    """(first data row number, table) chunks of one TSV (every column a string, empty fields "").

    pyarrow's streaming CSV reader rather than pandas': pandas pads a row with too few fields with ""
    (indistinguishable from empty fields), so a line cut short would pass as a row with, say, no
    mime type. pyarrow reports every row whose field count differs from the header's, too few or too
    many, and the row is named in the error. Quoting as pandas and Python's csv read it: a field that
    starts with a double quote runs to the closing quote, tabs and newlines included.
    """
    import pyarrow.csv as pa_csv

    if not path.is_file():
        raise DataError(f"WIT TSV {path} does not exist", "pass --tsv with WIT's .tsv.gz files")
    ragged: list[Any] = []

    def refuse(row) -> str:
        ragged.append(row)
        return "error"

    try:
        reader = pa_csv.open_csv(
            path,  # a .gz name is decompressed on the fly
            read_options=pa_csv.ReadOptions(block_size=16 << 20, encoding="utf8"),
            parse_options=pa_csv.ParseOptions(
                delimiter="\t", newlines_in_values=True, invalid_row_handler=refuse
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.string() for name in COLUMNS},  # as written: no number parsing
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        missing = [c for c in NEEDED if c not in reader.schema.names]
        if missing:
            raise DataError(
                f"{path}: missing column(s) {', '.join(missing)}",
                f"WIT TSVs have a header with {', '.join(COLUMNS[:7])}, ...",
            )
        first_row = 0
        for batch in reader:
            yield first_row, pa.Table.from_batches([batch])
            first_row += batch.num_rows
    except (pa.ArrowInvalid, pa.ArrowIOError, UnicodeDecodeError, OSError, EOFError) as exc:
        if ragged:
            row = ragged[0]
            text = row.text if len(row.text) <= 80 else row.text[:77] + "..."
            raise DataError(
                f"{path}: malformed TSV: a row has {row.actual_columns} fields, the header "
                f"{row.expected_columns}: {text!r}",
                "a line cut short or with stray tabs: repair or re-download the file",
            ) from None
        raise DataError(
            f"cannot read {path}: {' '.join(str(exc).split())}",
            "is it a whole (gzipped) WIT TSV? Re-download it if it was cut short",
        ) from None


@folder_lock.scoped
def run(source: WitSource, download: DownloadSettings, val_fraction: float) -> dict[str, Any]:
    """Filter, download and write `source.out`/manifest.parquet + summary.json."""
    if not source.tsv:
        raise ConfigError("no WIT TSV given", "pass --tsv FILE... or set data.wit.tsv in the config")
    rows, read = read_table(source)
    out = Path(source.out)
    output_folder.check_ours(out, "--out (data.wit.out)")  # a rerun cleans up by name
    folder_lock.acquire(out, "download wit")  # inputs checked: from here on, writes
    wanted = pc.if_else(pc.is_null(rows.column("reason")), rows.column("url"), None)
    results = img2dataset_run.download_rows(wanted, out, download)
    with manifest_out.writing(out) as manifest_rows:
        for start in range(0, rows.num_rows, manifest_out.BATCH_ROWS):
            stop = min(start + manifest_out.BATCH_ROWS, rows.num_rows)
            batch = rows.slice(start, stop - start).to_pylist()
            for row, result in zip(batch, results.batch(start, stop), strict=True):
                manifest_rows.add(_manifest_row(row, result, source.lang, val_fraction))
    return summary.finish(manifest_rows.counts, out, SOURCE, rows_read=read, lang=source.lang,
                          inputs=[str(p) for p in source.tsv])  # fmt: skip


def _manifest_row(
    row: dict[str, Any], result: dict[str, Any], lang: str, val_fraction: float
) -> dict[str, Any]:
    key = f"{SOURCE}/{row['file']}/{row['row']}"
    meta = {k: row.get(k) for k in META_COLUMNS}
    if row["reason"] is None:
        fields, meta = fetched.manifest_fields(result), {**meta, **fetched.meta(result)}
    else:
        fields = {"status": manifest.STATUS_FILTERED, "error": row["reason"]}
    return {
        "key": key,
        "source": SOURCE,
        "url": row["url"] or None,
        "caption": row["caption"] or None,
        "caption_en": None,
        "lang": lang,
        "split": manifest.split_for_image(
            val_fraction, result["sha256"], row["url"] or None, key
        ),  # by image
        "meta": {"file": row["file"], "row": row["row"], **meta},
        **fields,
    }
