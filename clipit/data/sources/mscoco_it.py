"""MSCOCO-IT: Italian COCO captions (COCO-format JSON) over a local COCO images folder or COCO's URLs.

One manifest row per (image, Italian caption), key `mscoco-it/<image_id>/<n>` with n the caption's
position among that image's captions (in file order, across the given files). The split is by image, so
the captions of one image never straddle train and val: an image of a dev/val/test file (by its name,
e.g. captions_ita_devset_validated.json) is val on purpose (`split_fixed`, kept by build-shards), any
other image gets the split of its identity (`manifest.split_for_image`).

- `image_id` is a string in MSCOCO-IT's validated files and an int in `images[].id`: both become ints.
- English captions (`--annotations-en`, COCO's own caption files) fill `caption_en`: by annotation id
  when the Italian file kept COCO's ids, else by position among the image's captions (meta records
  which, as `caption_en_match`).
- With a local images folder nothing is copied: `shard` is the image file's path relative to the
  source folder and `index` is null (a row whose `index` is null has its image at `shard` itself).
  Files are found by `images[].file_name` or by the image id in the name (COCO_val2014_000000391895.jpg,
  000000391895.jpg). Without a folder, the images are fetched from `images[].coco_url` (or
  images.cocodataset.org) through img2dataset, once per image.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
from PIL import Image, UnidentifiedImageError

from clipit import folder_lock
from clipit.config.data import DownloadSettings, MscocoItSource
from clipit.data import manifest, output_folder
from clipit.data.sources import fetched, img2dataset_run, manifest_out, summary
from clipit.data.sources.fetched import Fetched
from clipit.errors import ConfigError, DataError

SOURCE = "mscoco-it"
_ID_IN_NAME = re.compile(r"(\d+)\.(?:jpe?g|png)$", re.IGNORECASE)
_COCO_SPLIT_IN_NAME = re.compile(r"^COCO_([a-z]+\d{4})_\d+\.jpg$")


def load_coco(path: Path) -> tuple[dict[int, dict], list[dict]]:
    """(images by int id, annotations with int image_id) of one COCO caption file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"annotation file {path} does not exist", "pass --annotations with COCO-format JSON files"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise DataError(
            f"{path}: no 'annotations' list",
            "COCO caption files hold {'images': [...], 'annotations': [...]}",
        )
    images = {}
    for i, image in enumerate(data.get("images") or []):
        image_id = _int_id(image.get("id") if isinstance(image, dict) else None, path, f"images[{i}].id")
        images[image_id] = image
    annotations = []
    for i, ann in enumerate(data["annotations"]):
        where = f"annotations[{i}]"
        if not isinstance(ann, dict) or not isinstance(ann.get("caption"), str):
            raise DataError(
                f"{path}: {where} has no 'caption' string", "each annotation needs image_id and caption"
            )
        annotations.append({**ann, "image_id": _int_id(ann.get("image_id"), path, f"{where}.image_id")})
    return images, annotations


def _int_id(value: Any, path: Path, where: str) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(str(value).strip())
    except (TypeError, ValueError):
        raise DataError(
            f"{path}: {where} = {value!r} is not an image id", "ids must be integers or digit strings"
        ) from None


def english_captions(paths: list[Path]) -> tuple[dict[tuple[int, str], str], dict[int, list[str]]]:
    """English captions by (image id, annotation id) and, per image, in file order."""
    by_id: dict[tuple[int, str], str] = {}
    by_image: dict[int, list[str]] = defaultdict(list)
    for path in paths:
        _, annotations = load_coco(path)
        for ann in annotations:
            caption = " ".join(ann["caption"].split())
            if ann.get("id") is not None:
                by_id[(ann["image_id"], str(ann["id"]))] = caption
            by_image[ann["image_id"]].append(caption)
    return by_id, by_image


def coco_url(image: dict | None) -> str | None:
    if not image:
        return None
    if image.get("coco_url"):
        return image["coco_url"]
    match = _COCO_SPLIT_IN_NAME.match(image.get("file_name") or "")
    return f"http://images.cocodataset.org/{match.group(1)}/{image['file_name']}" if match else None


def local_images(images: dict[int, dict], folder: Path, out: Path, wanted: set[int]) -> dict[int, Fetched]:
    """A result per wanted image id from files under `folder` (found by file_name or by the id in the name)."""
    if not folder.is_dir():
        raise DataError(f"images folder {folder} does not exist", "pass --images with the COCO images folder")
    by_id: dict[int, Path] = {}
    for path in sorted(folder.rglob("*")):
        match = _ID_IN_NAME.search(path.name)
        if match and path.is_file():
            by_id.setdefault(int(match.group(1)), path)
    results = {}
    for image_id in sorted(wanted):
        named = folder / (images.get(image_id, {}).get("file_name") or "")
        path = named if named.is_file() else by_id.get(image_id)
        results[image_id] = _local_image(path, folder, out)
    return results


def _local_image(path: Path | None, folder: Path, out: Path) -> Fetched:
    if path is None:
        return Fetched(ok=False, error=f"image file not found under {folder}")
    try:
        with Image.open(path) as image:  # reads the header only
            width, height = image.size
    except (UnidentifiedImageError, OSError) as exc:
        return Fetched(ok=False, error=f"not a readable image: {' '.join(str(exc).split())}")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    shard = os.path.relpath(path.resolve(), out.resolve())
    return Fetched(ok=True, shard=shard, index=None, width=width, height=height, sha256=digest.hexdigest())


_EVAL_FILE_PART = re.compile(r"^(dev|val|valid|validation|test)(set)?(\d{4})?$")


def _split(file_name: str, sha256: str | None, url: str | None, image: str, val_fraction: float) -> dict:
    """An evaluation file's images are val on purpose; the others are split by the image's identity."""
    if any(_EVAL_FILE_PART.match(part) for part in re.split(r"[^a-z0-9]+", file_name.lower())):
        return {"split": "val", "split_fixed": True}
    return {"split": manifest.split_for_image(val_fraction, sha256, url, image)}


@folder_lock.scoped
def run(source: MscocoItSource, download: DownloadSettings, val_fraction: float) -> dict[str, Any]:
    """Build `source.out`/manifest.parquet (+ summary.json), downloading images when no folder is given."""
    if not source.annotations:
        raise ConfigError(
            "no MSCOCO-IT annotation file given",
            "pass --annotations FILE... or set data.mscoco_it.annotations",
        )
    images: dict[int, dict] = {}
    captions: list[tuple[str, dict]] = []
    for path in source.annotations:
        file_images, annotations = load_coco(path)
        images.update(file_images)
        captions.extend((Path(path).name, ann) for ann in annotations)
    en_by_id, en_by_image = english_captions(list(source.annotations_en))
    out = Path(source.out)
    output_folder.check_ours(out, "--out (data.mscoco_it.out)")  # a rerun cleans up by name
    folder_lock.acquire(out, "download mscoco-it")  # inputs checked: from here on, writes
    image_ids = list(dict.fromkeys(ann["image_id"] for _, ann in captions))
    if source.images is not None:
        local = local_images(images, Path(source.images), out, set(image_ids))
        by_position = [local[i] for i in image_ids]
        results = fetched.RowResults(fetched.table(by_position), pa.array(range(len(image_ids)), pa.int64()))
    else:
        urls = pa.array([coco_url(images.get(i)) for i in image_ids], pa.string())
        results = img2dataset_run.download_rows(urls, out, download)
    position = {image_id: i for i, image_id in enumerate(image_ids)}
    captions_before: dict[int, int] = defaultdict(int)
    with manifest_out.writing(out) as rows:
        for start in range(0, len(captions), manifest_out.BATCH_ROWS):
            batch = captions[start : start + manifest_out.BATCH_ROWS]
            batch_results = results.take([position[ann["image_id"]] for _, ann in batch])
            for (file_name, ann), result in zip(batch, batch_results, strict=True):
                image_id = ann["image_id"]
                n = captions_before[image_id]
                captions_before[image_id] += 1
                rows.add(
                    _row(file_name, ann, n, images.get(image_id), result, en_by_id, en_by_image, val_fraction)
                )
    return summary.finish(rows.counts, out, SOURCE, images=len(image_ids), local=source.images is not None)


def _row(
    file_name: str,
    ann: dict,
    n: int,
    image: dict | None,
    result: dict[str, Any],
    en_by_id: dict[tuple[int, str], str],
    en_by_image: dict[int, list[str]],
    val_fraction: float,
) -> dict[str, Any]:
    """The manifest row of the n-th caption of an image."""
    image_id = ann["image_id"]
    caption_en, match = en_by_id.get((image_id, str(ann.get("id")))), "id"
    if caption_en is None and n < len(en_by_image.get(image_id, ())):
        caption_en, match = en_by_image[image_id][n], "order"
    meta = {"image_id": image_id, "annotation_id": ann.get("id"), "file": file_name, **fetched.meta(result)}
    if caption_en is not None:
        meta["caption_en_match"] = match
    url = coco_url(image)
    return {
        "key": f"{SOURCE}/{image_id}/{n}",
        "source": SOURCE,
        "url": url,
        "caption": " ".join(ann["caption"].split()),
        "caption_en": caption_en,
        "lang": "it",
        **_split(file_name, result["sha256"], url, f"{SOURCE}/{image_id}", val_fraction),
        "meta": meta,
        **fetched.manifest_fields(result),
    }
