"""Conceptual Captions 3M: Google's header-less `caption<TAB>url` TSV -> images + manifest.

We parse the TSV ourselves (img2dataset's TSV reader treats `"` as a quote character and mangles the
many captions that contain one) and hand img2dataset only the URLs. One manifest row per TSV line:
key `cc3m/<line number>` (0-based, so keys stay stable whatever --limit is), the English caption in
`caption_en`, `caption` and `lang` empty until `clipit translate` fills them.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from clipit import folder_lock
from clipit.config.data import Cc3mSource, DownloadSettings
from clipit.data import manifest, output_folder
from clipit.data.sources import fetched, img2dataset_run, manifest_out, summary
from clipit.errors import ConfigError, DataError

SOURCE = "cc3m"


CHUNK_LINES = 65_536  # lines parsed into one chunk of columns


@dataclass
class Lines:
    """The TSV as columns: 0-based line numbers, English captions and URLs ("" when a line has none)."""

    numbers: np.ndarray
    captions: pa.ChunkedArray
    urls: pa.ChunkedArray

    def __len__(self) -> int:
        return len(self.numbers)


def read_tsv(path: Path, limit: int | None = None) -> list[tuple[int, str, str]]:
    """(line number, caption, url) per non-blank line; a line without exactly two fields is an error."""
    lines = read_columns(path, limit)
    return list(zip(lines.numbers.tolist(), lines.captions.to_pylist(), lines.urls.to_pylist(), strict=True))


def read_columns(path: Path, limit: int | None = None) -> Lines:
    """The non-blank lines of the TSV as columns (about 20 bytes a line besides the text itself)."""
    numbers, captions, urls = [], [], []
    for chunk in _chunks(Path(path), limit):
        numbers.append(np.asarray(chunk[0], np.int64))
        captions.append(pa.array(chunk[1], pa.string()))
        urls.append(pa.array(chunk[2], pa.string()))
    return Lines(
        np.concatenate([np.zeros(0, np.int64), *numbers]),
        pa.chunked_array(captions, pa.string()),
        pa.chunked_array(urls, pa.string()),
    )


def _chunks(path: Path, limit: int | None) -> Iterator[tuple[list[int], list[str], list[str]]]:
    """(line numbers, captions, urls) of up to CHUNK_LINES lines at a time."""
    if not path.is_file():
        raise DataError(f"CC3M TSV {path} does not exist", "pass --tsv with Google's caption<TAB>url file")
    chunk: tuple[list[int], list[str], list[str]] = ([], [], [])
    kept = 0
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="\n") as lines:
            for number, line in enumerate(lines):
                if limit is not None and kept >= limit:
                    break
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                fields = line.split("\t")
                if len(fields) != 2:
                    raise DataError(
                        f"{path}: line {number + 1}: expected 2 tab-separated fields (caption, url), found {len(fields)}",
                        "the file must be Google's header-less caption<TAB>url TSV",
                    )
                chunk[0].append(number)
                chunk[1].append(fields[0].strip())
                chunk[2].append(fields[1].strip())
                kept += 1
                if len(chunk[0]) >= CHUNK_LINES:
                    yield chunk
                    chunk = ([], [], [])
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})", "is this the CC3M TSV?"
        ) from None
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if chunk[0]:
        yield chunk


@folder_lock.scoped
def run(source: Cc3mSource, download: DownloadSettings, val_fraction: float) -> dict[str, Any]:
    """Download the rows of `source.tsv` into `source.out`; write manifest.parquet and summary.json.

    The lines are held as columns and the manifest is written a batch at a time, so memory stays far
    below a Python object a line (CC3M has 3.3 million).
    """
    if source.tsv is None:
        raise ConfigError("no CC3M TSV given", "pass --tsv FILE or set data.cc3m.tsv in the config")
    lines = read_columns(source.tsv, source.limit)
    out = Path(source.out)
    output_folder.check_ours(out, "--out (data.cc3m.out)")  # a rerun cleans up by name
    folder_lock.acquire(out, "download cc3m")  # inputs checked: from here on, writes
    results = img2dataset_run.download_rows(lines.urls, out, download)
    with manifest_out.writing(out) as rows:
        for start in range(0, len(lines), manifest_out.BATCH_ROWS):
            stop = min(start + manifest_out.BATCH_ROWS, len(lines))
            numbers = lines.numbers[start:stop].tolist()
            captions = lines.captions[start:stop].to_pylist()
            urls = lines.urls[start:stop].to_pylist()
            for number, caption, url, result in zip(
                numbers, captions, urls, results.batch(start, stop), strict=True
            ):
                key = f"{SOURCE}/{number}"
                rows.add(
                    {
                        "key": key,
                        "source": SOURCE,
                        "url": url,
                        "caption": None,  # filled by `clipit translate`
                        "caption_en": caption,
                        "lang": None,
                        "split": manifest.split_for_image(
                            val_fraction, result["sha256"], url or None, key
                        ),  # by image
                        "meta": {"line": number + 1, **fetched.meta(result)},
                        **fetched.manifest_fields(result),
                    }
                )
    return summary.finish(rows.counts, out, SOURCE, input=str(source.tsv))
