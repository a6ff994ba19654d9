"""Write the synthetic training stream in the layout of a real img2dataset download.

`DIR/00000.tar` holds `{key:09d}.jpg`, `.txt` (the image's plain Italian caption) and `.json`
(img2dataset's per-sample record) for each image; `DIR/00000.parquet` and `DIR/00000_stats.json` are
img2dataset's per-shard table and counts. The parquet's extra `captions` column holds every caption of the
image (`[[italian, english], ...]`, JSON), from which the manifest gets one row per image-caption pair. The tar members carry fixed times and owners, so the same seed gives the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from clipit import atomic
from clipit.data.synthetic import draw, paraphrase, scenes

# img2dataset's per-shard table, plus our three extra columns.
_PARQUET_SCHEMA = pa.schema(
    [
        ("url", pa.string()),
        ("key", pa.string()),
        ("caption", pa.string()),
        ("status", pa.string()),
        ("error_message", pa.string()),
        ("width", pa.int64()),
        ("height", pa.int64()),
        ("original_width", pa.int64()),
        ("original_height", pa.int64()),
        ("exif", pa.string()),
        ("sha256", pa.string()),
        ("caption_en", pa.string()),
        ("labels", pa.string()),
        ("captions", pa.string()),
    ]
)


@dataclass(frozen=True)
class Sample:
    index: int  # the img2dataset key, an integer
    jpeg: bytes
    captions: tuple[tuple[str, str], ...]  # (Italian, English), the plain caption first
    labels: dict
    side: int

    @property
    def caption(self) -> str:
        return self.captions[0][0]

    @property
    def caption_en(self) -> str:
        return self.captions[0][1]

    @property
    def name(self) -> str:
        return f"{self.index:09d}"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.jpeg).hexdigest()


def make_training_sample(seed: int, index: int, side: int, captions_per_image: int = 1) -> Sample:
    scene = scenes.sample_training_scene(scenes.rng_for(seed, "train", index))
    # the paraphrases draw from their own stream: the image does not depend on how many captions it gets
    captions = paraphrase.captions(scene, captions_per_image, scenes.rng_for(seed, "captions", index))
    jpeg = draw.encode_jpeg(draw.render(scene, side))
    return Sample(index=index, jpeg=jpeg, captions=tuple(captions), labels=scene.labels(), side=side)


def draw_range(seed: int, start: int, stop: int, side: int, captions_per_image: int = 1) -> list[Sample]:
    """Samples start..stop-1 (a top-level function, so worker processes can run it)."""
    return [make_training_sample(seed, i, side, captions_per_image) for i in range(start, stop)]


def url_of(seed: int, index: int) -> str:
    return f"synthetic://seed-{seed}/{index:09d}"


def write_shard(folder: Path, shard_id: int, seed: int, samples: list[Sample], identity: dict) -> None:
    """One tar + its img2dataset parquet + stats, each atomic; the stats (with `identity`) come last."""
    stem = f"{shard_id:05d}"
    records = [_record(seed, s) for s in samples]
    with (
        atomic.atomic_path(folder / f"{stem}.tar") as tmp,
        tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        for sample, record in zip(samples, records, strict=True):
            _add(tar, f"{sample.name}.jpg", sample.jpeg)
            _add(tar, f"{sample.name}.txt", sample.caption.encode("utf-8"))
            _add(
                tar,
                f"{sample.name}.json",
                json.dumps(record, ensure_ascii=False, sort_keys=True).encode("utf-8"),
            )
    # img2dataset's extra columns: the English caption, the structured labels and every caption (JSON).
    table = pa.Table.from_pylist(
        [
            {
                **r,
                "caption_en": s.caption_en,
                "labels": json.dumps(s.labels, sort_keys=True),
                "captions": json.dumps(s.captions, ensure_ascii=False),
            }
            for s, r in zip(samples, records, strict=True)
        ],
        schema=_PARQUET_SCHEMA,
    )
    with atomic.atomic_path(folder / f"{stem}.parquet") as tmp:
        pq.write_table(table, tmp)
    stats = {
        "count": len(samples),
        "successes": len(samples),
        "failed_to_download": 0,
        "failed_to_resize": 0,
        "status_dict": {"success": len(samples)},
        "clipit_synthetic": identity,
        # img2dataset also records durations; they are left out so that reruns give identical bytes.
    }
    atomic.write_text(folder / f"{stem}_stats.json", json.dumps(stats, indent=2, sort_keys=True) + "\n")


def _record(seed: int, sample: Sample) -> dict:
    """img2dataset's per-sample fields (its .json member and parquet row)."""
    return {
        "url": url_of(seed, sample.index),
        "key": sample.name,
        "caption": sample.caption,
        "status": "success",
        "error_message": None,
        "width": sample.side,
        "height": sample.side,
        "original_width": sample.side,
        "original_height": sample.side,
        "exif": None,
        "sha256": sample.sha256,
    }


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0  # fixed metadata: the same samples give the same tar bytes
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def write_jpeg_files(folder: Path, files: dict[str, bytes]) -> None:
    for relative, data in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
