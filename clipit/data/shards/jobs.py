"""A build's jobs: the rows of one output shard each, and the hash of everything its bytes depend on.

A job carries row numbers, not rows: the process that builds it reads its rows back from the source
manifests (`Job.candidates`), so a plan of millions of rows holds arrays, not row objects. The hash is
fed one row at a time in one streamed pass over the inputs; a finished shard whose record holds the same
hash is reused by a rerun.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clipit.config.data import ShardSettings
from clipit.data import manifest, manifest_stream, shard_format
from clipit.data.shards import locate

CANDIDATE_COLUMNS = ["key", "source", "caption", "caption_en", "meta", "image_sha256", "shard", "index"]


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
            table = manifest_stream.read_rows(source.manifest, local - source.first, CANDIDATE_COLUMNS)
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


def cut_jobs(
    inputs: tuple[Input, ...],
    candidate: np.ndarray,
    split: np.ndarray,
    shas: dict[int, str],
    settings: ShardSettings,
    exclude_digest: str,
) -> list[Job]:
    """Cut each split's candidate rows (`candidate`: a bool per input row) into jobs, then hash each job's rows in one more pass over the inputs."""
    jobs: list[Job] = []
    for number_of_split, name in enumerate(manifest.SPLITS):
        kept = np.flatnonzero(candidate & (split == number_of_split))
        for number, start in enumerate(range(0, kept.size, settings.rows_per_shard)):
            rows = kept[start : start + settings.rows_per_shard]
            job_shas = {r: shas[r] for r in rows.tolist() if r in shas} if shas else {}
            jobs.append(Job(shard_format.shard_name(name, number), name, inputs, rows, job_shas))
    hashing = [_JobHash(job, settings, exclude_digest) for job in jobs]
    pending = {name: [h for h in hashing if h.job.split == name] for name in manifest.SPLITS}
    for source in inputs:
        images = locate.SourceImages(source.folder)
        row = source.first
        for table in manifest_stream.iter_batches(source.manifest, CANDIDATE_COLUMNS):
            local = np.flatnonzero(candidate[row : row + table.num_rows])
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
