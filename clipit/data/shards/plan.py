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
A job carries row numbers, not rows: the process that builds it reads its rows back (`Job.candidates`).
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clipit.config.data import ShardSettings
from clipit.data import manifest, manifest_stream, shard_format, string_ids
from clipit.data.shards import exclude, locate, splits

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
_CANDIDATE = ["key", "source", "caption", "caption_en", "meta", "image_sha256", "shard", "index"]


def reason_of(code: int) -> str:
    return REASONS[code - 2]


def code_of(reason: str) -> int:
    return _CODE[reason]


@dataclass(frozen=True)
class Input:
    folder: Path
    manifest: Path
    first: int  # row number of its first row in the merged input
    rows: int


@dataclass(frozen=True)
class Candidate:
    row: int  # position in the merged input manifest
    key: str
    source: str
    caption: str
    caption_en: str | None
    meta: str | None
    sha256: str
    location: locate.Location | str  # a reason when the image vanished after the plan

    def hashed(self) -> str:
        """This row as the job hash sees it (JSON, sorted keys; not the input position)."""
        location = self.location
        if isinstance(location, locate.Location):
            location = {"offset": location.offset, "path": location.path, "size": location.size}
        fields = {
            "caption": self.caption,
            "caption_en": self.caption_en,
            "key": self.key,
            "location": location,
            "meta": self.meta,
            "row": None,
            "sha256": self.sha256,
            "source": self.source,
        }
        return json.dumps(fields, sort_keys=True)


@dataclass
class Job:
    name: str  # shard file name
    split: str
    inputs: tuple[Input, ...]
    rows: np.ndarray  # ascending positions in the merged input
    shas: dict[int, str] = field(default_factory=dict)  # SHA-256s the plan computed (none in the manifest)
    digest: str = ""  # hash of everything the shard's bytes depend on: a finished shard with it is reused

    def __len__(self) -> int:
        return int(self.rows.size)

    def candidates(self) -> list[Candidate]:
        """The job's rows, read back from the source manifests (only the row groups that hold them)."""
        found: list[Candidate] = []
        for source in self.inputs:
            local = self.rows[(self.rows >= source.first) & (self.rows < source.first + source.rows)]
            if not local.size:
                continue
            table = manifest_stream.read_rows(source.manifest, local - source.first, _CANDIDATE)
            images = locate.SourceImages(source.folder)
            for row, values in zip(local.tolist(), table.to_pylist(), strict=True):
                found.append(_candidate(row, values, images, self.shas.get(row)))
        return found


def _candidate(row: int, values: dict, images: locate.SourceImages, sha: str | None) -> Candidate:
    return Candidate(
        row,
        values["key"],
        values["source"],
        values["caption"].strip(),
        values["caption_en"],
        values["meta"],
        values["image_sha256"] or sha,
        images.locate(values["shard"], values["index"]),
    )


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
    jobs = _jobs(inputs, code, split, shas, settings, excluded.digest)
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


def _jobs(
    inputs: tuple[Input, ...],
    code: np.ndarray,
    split: np.ndarray,
    shas: dict[int, str],
    settings: ShardSettings,
    exclude_digest: str,
) -> list[Job]:
    """Cut each split's kept rows into jobs, then hash each job's rows in one more pass over the inputs."""
    jobs: list[Job] = []
    for number_of_split, name in enumerate(manifest.SPLITS):
        kept = np.flatnonzero((code == CANDIDATE) & (split == number_of_split))
        for number, start in enumerate(range(0, kept.size, settings.rows_per_shard)):
            rows = kept[start : start + settings.rows_per_shard]
            job_shas = {r: shas[r] for r in rows.tolist() if r in shas} if shas else {}
            jobs.append(Job(shard_format.shard_name(name, number), name, inputs, rows, job_shas))
    hashing = [_JobHash(job, settings, exclude_digest) for job in jobs]
    pending = {name: [h for h in hashing if h.job.split == name] for name in manifest.SPLITS}
    for source in inputs:
        images = locate.SourceImages(source.folder)
        row = source.first
        for table in manifest_stream.iter_batches(source.manifest, _CANDIDATE):
            local = np.flatnonzero(code[row : row + table.num_rows] == CANDIDATE)
            if local.size:
                values = table.take(local).to_pylist()
                for offset, value in zip(local.tolist(), values, strict=True):
                    number = row + offset
                    queue = pending[manifest.SPLITS[split[number]]]
                    queue[0].add(_candidate(number, value, images, shas.get(number)))
                    if queue[0].done:
                        queue.pop(0)
            row += table.num_rows
    return jobs


class _JobHash:
    """The job's digest, fed one row at a time: the SHA-256 of one JSON document
    {"exclude": ..., "format": ..., "rows": [...], "settings": [...]} (sorted keys, no exclude key
    without an exclude set, so shards built without one stay valid)."""

    def __init__(self, job: Job, settings: ShardSettings, exclude_digest: str):
        self.job, self.left = job, len(job)
        head = {"exclude": exclude_digest} if exclude_digest else {}
        head["format"] = shard_format.SHARD_VERSION
        opening = json.dumps(head, sort_keys=True)[:-1] + ', "rows": ['
        self.closing = "], " + json.dumps({"settings": self._settings(settings)})[1:]
        self.hash = hashlib.sha256(opening.encode())

    @staticmethod
    def _settings(settings: ShardSettings) -> list[int]:
        return [
            settings.image_side,
            settings.jpeg_quality,
            settings.min_image_side,
            settings.max_image_pixels,
            settings.row_group_size,
        ]

    @property
    def done(self) -> bool:
        return self.left == 0

    def add(self, candidate: Candidate) -> None:
        separator = "" if self.left == len(self.job) else ", "
        self.hash.update((separator + candidate.hashed()).encode())
        self.left -= 1
        if not self.left:
            self.hash.update(self.closing.encode())
            self.job.digest = self.hash.hexdigest()


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
