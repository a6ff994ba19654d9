"""The plan of a build: which input rows go into which shard, decided before any image is decoded.

Rows are taken in input order (sources in the order given, each in its manifest's order). Filters that
need no pixels run here: source status, caption present / language / length, image location, empty
file, duplicates, images of an excluded evaluation set with the same bytes (exclude.py). Every row
gets the split of its image (splits.py), and the kept rows are cut into jobs of `rows_per_shard` per
split: job k of a split is shard `<split>-<k:05d>.parquet`. A row that fails decoding later is filtered
inside its job, so shard boundaries never depend on pixels and the plan (and each job's hash) is the
same on every run with the same inputs: that is what lets a rerun keep finished shards.

Memory does not grow with rows held as objects: the manifests are streamed in batches, twice (once to
check rows and collect their ids, once to hash each job's rows), and what must be global is a few numpy
arrays of about 40 bytes a row (64-bit ids of images, URLs, origins and caption pairs; a code per row).
The jobs and their hashes are jobs.py's.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clipit.config.data import ShardSettings
from clipit.data import manifest, manifest_stream, string_ids
from clipit.data.shards import exclude, locate, splits
from clipit.data.shards.jobs import Input, Job, cut_jobs

NO_CAPTION = "no_caption"
WRONG_LANGUAGE = "wrong_language"
CAPTION_SHORT = "caption_too_short"
CAPTION_LONG = "caption_too_long"
DUPLICATE_IMAGE = "duplicate_image"
DUPLICATE_PAIR = "duplicate_pair"

# A row's code: CANDIDATE (goes to a job), SOURCE (the source's own status and error stay), or
# 2 + the position of its filter reason in REASONS.
CANDIDATE, SOURCE = 0, 1
REASONS = (
    NO_CAPTION,
    WRONG_LANGUAGE,
    CAPTION_SHORT,
    CAPTION_LONG,
    DUPLICATE_IMAGE,
    DUPLICATE_PAIR,
    exclude.EVAL_OVERLAP,
    locate.MISSING,
    locate.BAD_PATH,
    locate.EMPTY,
    locate.UNREADABLE,
)
_CODE = {reason: 2 + i for i, reason in enumerate(REASONS)}
_CHECKED = ["key", "source", "url", "caption", "lang", "status", "split", "split_fixed"]
_LOCATED = ["shard", "index", "image_sha256"]


def reason_of(code: int) -> str:
    return REASONS[code - 2]


def code_of(reason: str) -> int:
    return _CODE[reason]


@dataclass
class Plan:
    inputs: tuple[Input, ...]
    code: np.ndarray  # int16 per input row: CANDIDATE (in a job), SOURCE, or a filter reason
    split: np.ndarray  # int8 per input row: position in manifest.SPLITS
    jobs: list[Job]
    shas: dict[int, str]  # row -> SHA-256 the plan computed from the bytes (the manifest had none)
    exclude: exclude.ExcludeIndex = field(default_factory=exclude.ExcludeIndex)

    @property
    def rows(self) -> int:
        return int(self.code.size)


def make_plan(
    folders: list[Path], settings: ShardSettings, excluded: exclude.ExcludeIndex | None = None
) -> Plan:
    excluded = excluded if excluded is not None else exclude.ExcludeIndex()
    inputs = _inputs(folders)
    total = sum(i.rows for i in inputs)
    code = np.zeros(total, np.int16)
    ids = splits.Identities.empty(total)
    origin = np.zeros(total, np.uint64)  # where a candidate's image came from (its URL, else its file)
    pair = np.zeros(total, np.uint64)  # (image, normalised caption) of a candidate
    shas: dict[int, str] = {}
    for source in inputs:
        images = locate.SourceImages(source.folder)
        row = source.first
        for table in manifest_stream.iter_batches(source.manifest, _CHECKED + _LOCATED):
            columns = [table.column(name).to_pylist() for name in _CHECKED + _LOCATED]
            for key, _, url, caption, lang, status, split, fixed, shard, index, sha in zip(
                *columns, strict=True
            ):
                if status != manifest.STATUS_OK:
                    code[row] = SOURCE
                else:
                    reason, found = _check(caption, lang, shard, index, sha, images, settings)
                    if reason is not None:
                        code[row] = _CODE[reason]
                    else:
                        if not sha:
                            shas[row] = sha = found
                        origin[row] = string_ids.one(url or f"{source.folder}:{shard}:{index}")
                        normal = " ".join(caption.strip().casefold().split())
                        pair[row] = string_ids.one(f"{sha}\n{normal}")
                        if sha in excluded.sha256:
                            code[row] = _CODE[exclude.EVAL_OVERLAP]
                ids.set(row, splits.row_identity(sha, url, key, settings.val_fraction), split, fixed)
                row += 1
    # the split needs every image's identities, so it comes after the checks and before the duplicates
    split = splits.assign(ids, settings.val_fraction, lambda rows: _sha_names(inputs, rows, shas))
    candidate = np.flatnonzero(code == CANDIDATE)
    sha_ids = ids.first[candidate]  # a candidate's first identity is its SHA-256
    del ids
    _drop_duplicates(code, candidate, sha_ids, origin[candidate], pair[candidate], settings.dedup_images)
    del origin, pair, sha_ids, candidate
    jobs = cut_jobs(inputs, code == CANDIDATE, split, shas, settings, excluded.digest)
    return Plan(inputs, code, split, jobs, shas, excluded)


def _inputs(folders: list[Path]) -> tuple[Input, ...]:
    """Each source's manifest: columns and types checked, keys unique across all (values: as read)."""
    paths = []
    for folder in folders:
        locate.check_source(folder)
        paths.append(folder / manifest.MANIFEST_NAME)
    counts = [manifest_stream.open_file(path).metadata.num_rows for path in paths]  # values: checked as read
    manifest_stream.check_unique_keys(paths)
    firsts = np.cumsum([0, *counts]).tolist()
    return tuple(
        Input(folder, path, first, rows)
        for folder, path, first, rows in zip(folders, paths, firsts[:-1], counts, strict=True)
    )


def _sha_names(inputs: tuple[Input, ...], rows: np.ndarray, computed: dict[int, str]) -> list[str]:
    """The SHA-256 strings of some rows (ascending), as the split uses them."""
    names: list[str] = []
    for source in inputs:
        local = rows[(rows >= source.first) & (rows < source.first + source.rows)]
        if local.size:
            table = manifest_stream.read_rows(source.manifest, local - source.first, ["image_sha256"])
            found = table.column("image_sha256").to_pylist()
            names += [sha or computed[row] for row, sha in zip(local.tolist(), found, strict=True)]
    return names


def _drop_duplicates(
    code: np.ndarray, rows: np.ndarray, sha: np.ndarray, origin: np.ndarray, pair: np.ndarray, images: bool
) -> None:
    """Mark duplicate candidates (`rows`, in input order) in `code`.

    Taken in input order, a candidate is a duplicate pair when an earlier kept row has its image and
    caption, else a duplicate image (with `images`) when its image was first seen from another origin.
    So a kept row is one whose origin is its image's first origin and which is the first such row with
    its pair: both are computed at once from sorted ids.
    """
    count = rows.size
    if not count:
        return
    first_origin = np.ones(count, bool)
    if images:
        _, first, inverse = np.unique(sha, return_index=True, return_inverse=True)
        first_origin = origin == origin[first][inverse]
    where = np.flatnonzero(first_origin)
    kept_pairs, first = np.unique(pair[where], return_index=True)
    earliest = where[first]  # of each pair, the first row that is kept
    slot = np.minimum(np.searchsorted(kept_pairs, pair), kept_pairs.size - 1)
    seen = (kept_pairs[slot] == pair) & (earliest[slot] < np.arange(count))
    code[rows[seen]] = _CODE[DUPLICATE_PAIR]
    code[rows[~seen & ~first_origin]] = _CODE[DUPLICATE_IMAGE]


def _visible_chars(caption: str) -> int:
    """Characters a reader sees: not whitespace, and not an invisible format character (zero-width space,
    joiner, byte-order mark: Unicode category Cf), which `str.strip` keeps."""
    return sum(1 for ch in caption if not ch.isspace() and unicodedata.category(ch) != "Cf")


def _check(
    caption: str | None,
    lang: str | None,
    shard: str | None,
    index: int | None,
    sha: str | None,
    source: locate.SourceImages,
    settings: ShardSettings,
) -> tuple[str | None, str | None]:
    """(why the row is filtered, None) or (None, its image's SHA-256, computed from the bytes if needed)."""
    caption = (caption or "").strip()
    visible = _visible_chars(caption)
    if not visible:
        return NO_CAPTION, None
    if lang and lang != settings.lang:
        return WRONG_LANGUAGE, None
    if visible < settings.min_caption_chars:
        return CAPTION_SHORT, None
    if len(caption) > settings.max_caption_chars:
        return CAPTION_LONG, None
    location = source.locate(shard, index)
    if isinstance(location, str):
        return location, None
    if location.size == 0:
        return locate.EMPTY, None
    if not sha:
        try:
            sha = hashlib.sha256(locate.read_bytes(location)).hexdigest()
        except OSError:  # permissions, an I/O error, a file that vanished: filtered, not a crash
            return locate.UNREADABLE, None
    return None, sha
