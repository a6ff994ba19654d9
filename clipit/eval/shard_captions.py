"""A retrieval set from a split of a build-shards folder: its images and captions as a COCO eval folder.

The rows of one image (its several captions) share `image_sha256`; each image becomes one JPEG file
(the shard's stored bytes, unchanged) and each row one caption, written as `captions.json` (COCO's
form) beside an `images/` folder. The result is an ordinary eval folder: `clipit eval retrieval
--images DIR/images --annotations DIR/captions.json` ranks it with the same code and gives the same
numbers. Shards are read one at a time (only the caption and hash columns for the whole split), so the
memory held is one shard's images.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from clipit import atomic
from clipit.data.shard_format import list_shards, open_shard
from clipit.errors import DataError

CAPTIONS_FILE, IMAGES_DIR = "captions.json", "images"


def spread(count: int, limit: int | None) -> np.ndarray:
    """`limit` indices spread evenly over `count` items (all when there are no more than `limit`):
    class folders are listed class by class, so an even spread keeps every class."""
    if limit is None or count <= limit:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, limit).round().astype(np.int64))


def write_eval_folder(shards: Path, split: str, out: Path, *, max_images: int | None = None) -> Path:
    """Write `out/captions.json` and `out/images/` from the `split` rows of the shards folder `shards`
    (`max_images`: an evenly spread subset of its images, with all their captions); returns `out`."""
    paths = list_shards(shards, split)
    if not paths:
        raise DataError(f"{shards} has no {split} shards", f"build-shards with a {split} split first")
    image_of: dict[str, int] = {}
    for path in paths:
        for sha in open_shard(path).read(columns=["image_sha256"]).column("image_sha256").to_pylist():
            image_of.setdefault(sha, len(image_of))
    kept = {int(i) for i in spread(len(image_of), max_images)}
    with atomic.atomic_folder(out) as folder:  # one rename: the folder is whole or absent
        (folder / IMAGES_DIR).mkdir()
        images: dict[str, dict] = {}
        annotations: list[dict] = []
        for path in paths:
            table = open_shard(path).read(columns=["caption", "image_sha256", "image"])
            shas = table.column("image_sha256").to_pylist()
            for index, (caption, sha) in enumerate(
                zip(table.column("caption").to_pylist(), shas, strict=True)
            ):
                if image_of[sha] not in kept:
                    continue
                if sha not in images:
                    name = f"{image_of[sha]:09d}.jpg"
                    (folder / IMAGES_DIR / name).write_bytes(table.column("image")[index].as_py())
                    images[sha] = {"id": image_of[sha], "file_name": name}
                annotations.append({"image_id": image_of[sha], "caption": caption})
        ordered = sorted(images.values(), key=lambda image: image["id"])
        (folder / CAPTIONS_FILE).write_text(
            json.dumps({"images": ordered, "annotations": annotations}, ensure_ascii=False), encoding="utf-8"
        )
    return out
