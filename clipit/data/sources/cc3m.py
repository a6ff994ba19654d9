"""Conceptual Captions 3M: Google's header-less `caption<TAB>url` TSV -> images + manifest.

We parse the TSV ourselves (img2dataset's TSV reader treats `"` as a quote character and mangles the
many captions that contain one) and hand img2dataset only the URLs. One manifest row per TSV line:
key `cc3m/<line number>` (0-based, so keys stay stable whatever --limit is), the English caption in
`caption_en`, `caption` and `lang` empty until `clipit translate` fills them.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

from clipit import folder_lock
from clipit.config.data import Cc3mSource, DownloadSettings
from clipit.data import manifest, output_folder
from clipit.data.sources import img2dataset_run, summary
from clipit.errors import ConfigError, DataError

SOURCE = "cc3m"


def read_tsv(path: Path, limit: int | None = None) -> list[tuple[int, str, str]]:
    """(line number, caption, url) per non-blank line; a line without exactly two fields is an error."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"CC3M TSV {path} does not exist", "pass --tsv with Google's caption<TAB>url file")
    rows: list[tuple[int, str, str]] = []
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="\n") as lines:
            for number, line in enumerate(lines):
                if limit is not None and len(rows) >= limit:
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
                caption, url = (field.strip() for field in fields)
                rows.append((number, caption, url))
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})", "is this the CC3M TSV?"
        ) from None
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    return rows


@folder_lock.scoped
def run(source: Cc3mSource, download: DownloadSettings, val_fraction: float) -> dict[str, Any]:
    """Download the rows of `source.tsv` into `source.out`; write manifest.parquet and summary.json."""
    if source.tsv is None:
        raise ConfigError("no CC3M TSV given", "pass --tsv FILE or set data.cc3m.tsv in the config")
    lines = read_tsv(source.tsv, source.limit)
    out = Path(source.out)
    output_folder.check_ours(out, "--out (data.cc3m.out)")  # a rerun cleans up by name
    folder_lock.acquire(out, "download cc3m")  # inputs checked: from here on, writes
    fetched = img2dataset_run.download_rows([url or None for _, _, url in lines], out, download)
    rows = []
    for (number, caption, url), result in zip(lines, fetched, strict=True):
        key = f"{SOURCE}/{number}"
        rows.append(
            {
                "key": key,
                "source": SOURCE,
                "url": url,
                "caption": None,  # filled by `clipit translate`
                "caption_en": caption,
                "lang": None,
                "split": manifest.split_for_image(val_fraction, result.sha256, url or None, key),  # by image
                "meta": {"line": number + 1, **result.meta()},
                **result.manifest_fields(),
            }
        )
    return summary.finish(rows, out, SOURCE, input=str(source.tsv))
