"""Text-image retrieval on COCO-format caption files (MSCOCO-IT, the synthetic retrieval set).

The caption file is COCO's: `images: [{id, file_name}]`, `annotations: [{image_id, caption}]`. In
MSCOCO-IT's validated files `annotations[].image_id` is a string while `images[].id` is an int, so ids
are joined by their canonical text (an integer-looking id is compared as an integer: "000123" == 123).
Images without any caption cannot be ranked image->text and are left out (and counted); an image that
cannot be read is left out with its captions (and counted); neither stops the evaluation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from clipit.config.eval import EvalConfig
from clipit.console import info
from clipit.errors import ConfigError, DataError
from clipit.eval.metrics import retrieval_metrics
from clipit.eval.report import RETRIEVAL_TASK, EvalResult


@dataclass(frozen=True)
class CaptionSet:
    """Images and captions in file order; `caption_image[i]` indexes `image_paths`."""

    image_paths: list[Path]
    captions: list[str]
    caption_image: np.ndarray
    images_without_captions: int


def canonical_id(value: object) -> str:
    text = str(value).strip()
    return str(int(text)) if text.lstrip("-").isdigit() else text


def read_coco_captions(annotations: Path, images_dir: Path) -> CaptionSet:
    """Parse a COCO caption file; every failure names the file and the entry."""
    annotations, images_dir = Path(annotations), Path(images_dir)
    if not images_dir.is_dir():
        raise DataError(f"images folder {images_dir} does not exist", "pass --images DIR")
    try:
        data = json.loads(annotations.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(
            f"{annotations} does not exist", "pass --annotations with a COCO caption JSON"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{annotations} is not valid JSON: {exc}", "pass a COCO caption JSON") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("images"), list)
        or not isinstance(data.get("annotations"), list)
    ):
        raise DataError(f"{annotations} has no 'images' and 'annotations' lists", "pass a COCO caption JSON")

    position: dict[str, int] = {}
    paths: list[Path] = []
    for number, image in enumerate(data["images"]):
        if not isinstance(image, dict) or "id" not in image or not isinstance(image.get("file_name"), str):
            raise DataError(f"{annotations}: images[{number}] needs 'id' and 'file_name'", "fix the entry")
        key = canonical_id(image["id"])
        if key in position:
            raise DataError(
                f"{annotations}: images[{number}] repeats id {image['id']!r}", "ids must be unique"
            )
        position[key] = len(paths)
        paths.append(images_dir / _safe_relative(image["file_name"], annotations, number))

    captions: list[str] = []
    caption_image: list[int] = []
    for number, note in enumerate(data["annotations"]):
        if not isinstance(note, dict) or "image_id" not in note or not isinstance(note.get("caption"), str):
            raise DataError(
                f"{annotations}: annotations[{number}] needs 'image_id' and 'caption'", "fix the entry"
            )
        key = canonical_id(note["image_id"])
        if key not in position:
            raise DataError(
                f"{annotations}: annotations[{number}] refers to image_id {note['image_id']!r}, not in 'images'",
                "the caption file and its image list disagree; use the matching file",
            )
        captions.append(note["caption"].strip())
        caption_image.append(position[key])
    if not captions:
        raise DataError(f"{annotations} has no captions", "pass a COCO caption JSON with annotations")

    # Keep only images that have captions, renumbering captions to the kept images.
    used = sorted(set(caption_image))
    renumber = {old: new for new, old in enumerate(used)}
    return CaptionSet(
        image_paths=[paths[i] for i in used],
        captions=captions,
        caption_image=np.array([renumber[i] for i in caption_image], dtype=np.int64),
        images_without_captions=len(paths) - len(used),
    )


def _safe_relative(file_name: str, annotations: Path, number: int) -> PurePosixPath:
    """A file name may have folders but must stay inside the images folder (no '..', not absolute)."""
    relative = PurePosixPath(file_name.replace("\\", "/"))
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise DataError(
            f"{annotations}: images[{number}] file_name {file_name!r} leaves the images folder",
            "file names must be relative to --images",
        )
    return relative


def evaluate(encoder, captions: CaptionSet, *, dataset: str, model_name: str, batch_size: int) -> EvalResult:
    """Embed every image and caption once, then rank both ways; identical captions are one text."""
    images = encoder.encode_images(captions.image_paths, batch_size=batch_size, description="images")
    new_index = np.full(len(captions.image_paths), -1, dtype=np.int64)
    new_index[images.kept] = np.arange(len(images.kept))
    caption_image = new_index[captions.caption_image]
    usable = caption_image >= 0
    if not usable.any():
        raise DataError("no image of the caption file could be read", "check --images and the file names")
    texts = [caption for caption, keep in zip(captions.captions, usable, strict=True) if keep]
    text_vectors = encoder.encode_texts(texts, batch_size=batch_size, description="captions")
    metrics = retrieval_metrics(text_vectors, caption_image[usable], images.vectors, captions=texts)
    counts = {
        "images": len(images.kept),
        "captions": len(texts),
        "texts": len(set(texts)),  # identical caption strings are one text (metrics.unique_texts)
        "unreadable_images": len(images.failures),
        "captions_of_unreadable_images": int((~usable).sum()),
        "images_without_captions": captions.images_without_captions,
    }
    return EvalResult(dataset=dataset, model=model_name, task=RETRIEVAL_TASK, metrics=metrics, counts=counts)


def run(cfg: EvalConfig) -> list[EvalResult]:
    """Evaluate every model of `cfg.model` on `cfg.retrieval` (the caption file is read once)."""
    from clipit.encode import open_model

    settings = cfg.retrieval
    if not cfg.model:
        raise ConfigError("no model to evaluate", "pass --model M (repeatable) or set eval.model")
    if settings.images is None or settings.annotations is None:
        raise ConfigError(
            "retrieval needs an images folder and a caption file",
            "pass --images DIR --annotations JSON (or set eval.retrieval.images / .annotations)",
        )
    captions = read_coco_captions(settings.annotations, settings.images)
    info(f"{settings.annotations}: {len(captions.image_paths)} images, {len(captions.captions)} captions")
    results = []
    for spec in cfg.model:
        encoder = open_model(spec, dtype=cfg.dtype, compilation_cache=cfg.compilation_cache)
        results.append(
            evaluate(encoder, captions, dataset=settings.dataset, model_name=spec, batch_size=cfg.batch_size)
        )
    return results
