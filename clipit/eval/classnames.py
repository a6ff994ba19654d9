"""Class names and prompt templates for zero-shot evaluation: download, cache, checksum, parse.

Defaults are CLIP_benchmark's Italian files (MIT license, Copyright (c) 2022 Mehdi Cherti), pinned to
one commit and checked against a sha256: read from an installed `clip-benchmark` package when it ships
them with that checksum (no network), else downloaded once into the cache folder; never shipped with
clipit. Users can instead pass files in either of two forms:

- CLIP_benchmark JSON: an object `{"<dataset>": [...]}` (class names, or templates with `{c}`);
- CLIP-Italian's TSV (`imagenet_labels_IT.tsv`): the `query_short_translated` column, used with the
  single template `{}`, which is how their published table was computed.

Templates may also be plain text, one per line with a `{}` (CLIP-Italian's `italian_templates_IT.txt`).
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from clipit import atomic
from clipit.errors import DataError, NetworkError

CLIP_BENCHMARK_COMMIT = "48de38c1689fa6d8b4dd53e3370c669c3bb18117"
CLIP_BENCHMARK_BASE_URL = f"https://raw.githubusercontent.com/LAION-AI/CLIP_benchmark/{CLIP_BENCHMARK_COMMIT}/clip_benchmark/datasets/"


@dataclass(frozen=True)
class PinnedFile:
    name: str
    sha256: str


CLASSNAMES_FILE = PinnedFile(
    "it_classnames.json", "c68e61e8614c00a92419ff7676bbd9dadb0487851c5eaaa2056c4d0d137ca9b7"
)
TEMPLATES_FILE = PinnedFile(
    "it_zeroshot_classification_templates.json",
    "85b8739d92ad1a760e9badc83c7ef91aaf2091e3713509e9096ed44dd64ebb2a",
)
TSV_COLUMN = "query_short_translated"
DOWNLOAD_TIMEOUT_S = 30


def locate_pinned(file: PinnedFile, cache_dir: Path, *, base_url: str = CLIP_BENCHMARK_BASE_URL) -> Path:
    """The installed clip-benchmark package's copy of `file` when its sha256 is the pinned one, else
    `fetch_pinned` (cache, then download). Another version's different file is not used: the numbers
    would no longer be comparable with the pinned lists'."""
    packaged = packaged_copy(file)
    if packaged is not None:
        return packaged
    return fetch_pinned(file, cache_dir, base_url=base_url)


def packaged_copy(file: PinnedFile) -> Path | None:
    """clip_benchmark/datasets/<name> of the installed package, when present and pinned-identical.

    The package folder is found without importing it (its modules import torchvision)."""
    spec = importlib.util.find_spec("clip_benchmark")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / "datasets" / file.name
        try:
            if _sha256(candidate.read_bytes()) == file.sha256:
                return candidate
        except OSError:
            continue
    return None


def fetch_pinned(file: PinnedFile, cache_dir: Path, *, base_url: str = CLIP_BENCHMARK_BASE_URL) -> Path:
    """Return the cached copy of `file`, downloading and checking it first when it is not cached.

    A cached copy is re-hashed on every use, so a damaged cache is fetched again rather than trusted.
    A download whose hash differs is refused and nothing is cached.
    """
    target = Path(cache_dir).expanduser() / "clip_benchmark" / CLIP_BENCHMARK_COMMIT / file.name
    if target.is_file() and _sha256(target.read_bytes()) == file.sha256:
        return target
    url = base_url.rstrip("/") + "/" + file.name
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            data = response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise NetworkError(
            f"cannot download {url}: {getattr(exc, 'reason', exc)}",
            "pass --classnames/--templates files, or copy the file into " + str(target.parent),
        ) from None
    digest = _sha256(data)
    if digest != file.sha256:
        raise NetworkError(
            f"{url} has sha256 {digest}, expected {file.sha256}",
            "the download was altered or truncated; retry, or pass --classnames/--templates files",
        )
    atomic.write_bytes(target, data)
    return target


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_classnames(path: Path, dataset: str) -> list[str]:
    """Class names from a CLIP_benchmark JSON (key `dataset`, or the only key) or a CLIP-Italian TSV."""
    text = _read_text(path)
    if _looks_like_tsv(path, text):
        return _tsv_column(path, text, TSV_COLUMN)
    if path.suffix.lower() == ".json":
        return _json_list(path, text, dataset)
    return _lines(path, text)


def read_templates(path: Path, dataset: str) -> list[str]:
    """Templates from a CLIP_benchmark JSON or one per line; `{}` is accepted for `{c}`."""
    text = _read_text(path)
    templates = _json_list(path, text, dataset) if path.suffix.lower() == ".json" else _lines(path, text)
    for number, template in enumerate(templates, 1):
        if "{c}" not in template and "{}" not in template:
            raise DataError(
                f"{path}: template {number} {template!r} has no {{c}} placeholder",
                "each template must contain {c} (or {}) where the class name goes",
            )
    return templates


def read_wnids(path: Path) -> list[str] | None:
    """The wnid of each class (`set_id`) when the class names are CLIP-Italian's TSV, else None."""
    text = _read_text(path)
    if not _looks_like_tsv(path, text) or "set_id" not in text.split("\n", 1)[0].split("\t"):
        return None
    return _tsv_column(path, text, "set_id")


def default_templates_for(classnames_path: Path | None) -> list[str] | None:
    """CLIP-Italian's TSV labels come with the single template '{}' (their published setting)."""
    if classnames_path is not None and _looks_like_tsv(classnames_path, _read_text(classnames_path)):
        return ["{}"]
    return None


def fill(template: str, classname: str) -> str:
    # replace, not str.format: a template with other braces must not raise or change.
    return template.replace("{c}", classname).replace("{}", classname)


def _read_text(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path} does not exist", "check the --classnames/--templates path") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise DataError(f"cannot read {path}: {exc}", "pass a UTF-8 JSON, TSV or text file") from None


def _looks_like_tsv(path: Path, text: str) -> bool:
    first_line = text.split("\n", 1)[0]
    return path.suffix.lower() == ".tsv" or ("\t" in first_line and TSV_COLUMN in first_line)


def _tsv_column(path: Path, text: str, column: str) -> list[str]:
    rows = list(csv.DictReader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or column not in rows[0]:
        raise DataError(
            f"{path} has no {column!r} column", "use CLIP-Italian's imagenet_labels_IT.tsv layout"
        )
    names = [row[column] for row in rows]
    for number, name in enumerate(names, 2):
        if not name or not name.strip():
            raise DataError(f"{path}: row {number} has an empty {column!r}", "fill in the class name")
    return [name.strip() for name in names]


def _json_list(path: Path, text: str, dataset: str) -> list[str]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path} is not valid JSON: {exc}", 'use CLIP_benchmark\'s {"dataset": [...]} form'
        ) from None
    if isinstance(data, dict):
        if dataset in data:
            data = data[dataset]
        elif len(data) == 1:
            data = next(iter(data.values()))
        else:
            raise DataError(
                f"{path} has no key {dataset!r} (keys: {', '.join(sorted(data))})",
                "pass a file with that key, or one with a single key",
            )
    if not isinstance(data, list) or not data or not all(isinstance(item, str) and item for item in data):
        raise DataError(f"{path} does not hold a non-empty list of strings", "use CLIP_benchmark's JSON form")
    return data


def _lines(path: Path, text: str) -> list[str]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise DataError(f"{path} is empty", "put one entry per line")
    return lines
