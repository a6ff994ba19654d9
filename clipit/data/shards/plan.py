"""The plan of a build: which input rows go into which shard, decided before any image is decoded.

Rows are taken in input order (sources in the order given, each in its manifest's order). Filters that
need no pixels run here: source status, caption present / language / length, image location, empty
file, duplicates, images of an excluded evaluation set with the same bytes (exclude.py). Every row
gets the split of its image (splits.py), and the kept rows are cut into jobs of `rows_per_shard` per
split: job k of a split is shard `<split>-<k:05d>.parquet`. A row that fails decoding later is filtered
inside its job, so shard boundaries never depend on pixels and the plan (and each job's hash) is the
same on every run with the same inputs: that is what lets a rerun keep finished shards.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path

from clipit.config.data import ShardSettings
from clipit.data import manifest, shard_format
from clipit.data.shards import exclude, locate, splits

NO_CAPTION = "no_caption"
WRONG_LANGUAGE = "wrong_language"
CAPTION_SHORT = "caption_too_short"
CAPTION_LONG = "caption_too_long"
DUPLICATE_IMAGE = "duplicate_image"
DUPLICATE_PAIR = "duplicate_pair"


@dataclass(frozen=True)
class Candidate:
    row: int  # position in the merged input manifest
    key: str
    source: str
    caption: str
    caption_en: str | None
    meta: str | None
    sha256: str
    location: locate.Location


@dataclass
class Job:
    name: str  # shard file name
    split: str
    candidates: list[Candidate] = field(default_factory=list)

    def digest(self, settings: ShardSettings, exclude_digest: str = "") -> str:
        """Hash of everything the shard's bytes depend on: a finished shard with this hash is reused."""
        payload: dict = (
            {"exclude": exclude_digest} if exclude_digest else {}
        )  # no key: older shards stay valid
        payload |= {
            "format": shard_format.SHARD_VERSION,
            "settings": [
                settings.image_side,
                settings.jpeg_quality,
                settings.min_image_side,
                settings.max_image_pixels,
                settings.row_group_size,
            ],
            "rows": [asdict(c) | {"row": None} for c in self.candidates],  # not the input position
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass
class Plan:
    rows: list[dict]  # the merged input manifest, as dicts
    decided: dict[int, tuple[str, str | None]]  # row -> (status, error) settled without pixels
    jobs: list[Job]
    split: dict[int, str]  # row -> train / val
    exclude: exclude.ExcludeIndex = field(default_factory=exclude.ExcludeIndex)


def make_plan(
    folders: list[Path], settings: ShardSettings, excluded: exclude.ExcludeIndex | None = None
) -> Plan:
    excluded = excluded if excluded is not None else exclude.ExcludeIndex()
    tables = [locate.read_source(f) for f in folders]
    merged = manifest.merge(tables, [str(f / manifest.MANIFEST_NAME) for f in folders])
    images = [locate.SourceImages(f) for f in folders]
    owners = [source for source, t in zip(images, tables, strict=True) for _ in range(t.num_rows)]
    rows = merged.to_pylist()
    decided: dict[int, tuple[str, str | None]] = {}
    candidates: dict[int, Candidate] = {}
    for i, (row, source) in enumerate(zip(rows, owners, strict=True)):
        if row["status"] != manifest.STATUS_OK:
            decided[i] = (row["status"], row["error"])
            continue
        reason, candidate = _check(i, row, source, settings)
        if candidate is not None:
            candidates[i] = candidate
        else:
            decided[i] = (manifest.STATUS_FILTERED, reason)
    # the split needs every image's hash, so it comes after the checks and before the duplicate filters
    split_of = splits.assign(rows, {i: c.sha256 for i, c in candidates.items()}, settings.val_fraction)
    kept: dict[str, list[Candidate]] = {split: [] for split in manifest.SPLITS}
    first_origin: dict[str, str] = {}  # image sha256 -> where it was first seen
    pairs: set[tuple[str, str]] = set()
    for i, candidate in candidates.items():
        row, source = rows[i], owners[i]
        origin = row["url"] or f"{source.folder}:{row['shard']}:{row['index']}"
        pair = (candidate.sha256, " ".join(candidate.caption.casefold().split()))
        if candidate.sha256 in excluded.sha256:
            decided[i] = (manifest.STATUS_FILTERED, exclude.EVAL_OVERLAP)
        elif pair in pairs:
            decided[i] = (manifest.STATUS_FILTERED, DUPLICATE_PAIR)
        elif settings.dedup_images and first_origin.get(candidate.sha256, origin) != origin:
            decided[i] = (manifest.STATUS_FILTERED, DUPLICATE_IMAGE)
        else:
            pairs.add(pair)
            first_origin.setdefault(candidate.sha256, origin)
            kept[split_of[i]].append(candidate)
    jobs = []
    for split, candidates in kept.items():
        for number, start in enumerate(range(0, len(candidates), settings.rows_per_shard)):
            chunk = candidates[start : start + settings.rows_per_shard]
            jobs.append(Job(shard_format.shard_name(split, number), split, chunk))
    return Plan(rows, decided, jobs, split_of, excluded)


def _visible_chars(caption: str) -> int:
    """Characters a reader sees: not whitespace, and not an invisible format character (zero-width space,
    joiner, byte-order mark: Unicode category Cf), which `str.strip` keeps."""
    return sum(1 for ch in caption if not ch.isspace() and unicodedata.category(ch) != "Cf")


def _check(
    i: int, row: dict, source: locate.SourceImages, settings: ShardSettings
) -> tuple[str | None, Candidate | None]:
    caption = (row["caption"] or "").strip()
    visible = _visible_chars(caption)
    if not visible:
        return NO_CAPTION, None
    if row["lang"] and row["lang"] != settings.lang:
        return WRONG_LANGUAGE, None
    if visible < settings.min_caption_chars:
        return CAPTION_SHORT, None
    if len(caption) > settings.max_caption_chars:
        return CAPTION_LONG, None
    location = source.locate(row["shard"], row["index"])
    if isinstance(location, str):
        return location, None
    if location.size == 0:
        return locate.EMPTY, None
    sha = row["image_sha256"]
    if not sha:
        try:
            sha = hashlib.sha256(locate.read_bytes(location)).hexdigest()
        except OSError:  # permissions, an I/O error, a file that vanished: filtered, not a crash
            return locate.UNREADABLE, None
    return None, Candidate(
        i, row["key"], row["source"], caption, row["caption_en"], row["meta"], sha, location
    )
