"""Image preprocessing: the one place for decoding and for the train and eval transforms.

Used by the loader (training and validation batches), eval and embed alike, so a model sees the same
pixels at training and at inference time.

- decoding (bytes or a file to an RGB uint8 array, with the decompression-bomb guard, and the one
  conversion of a Pillow image that build-shards shares) is `clipit.data.decode`'s.
- `eval_transform`: exactly transformers' CLIPImageProcessor (PIL bicubic resize of the shorter side,
  centre crop, rescale 1/255, CLIP mean/std), NHWC float32: `normalize(eval_resize_crop(...))`.
- `train_transform`: random resized crop (OpenCV resize: about 6x faster than Pillow's on 256-px
  images, which is what keeps the loader near the JPEG-decode rate), horizontal flip, optional colour
  jitter; deterministic given a `random.Random`. A flip also swaps sinistra/destra in the caption
  (`swap_left_right`), so the caption stays true of the flipped image.

Two pixel forms: the loader hands uint8 RGB over (`train_transform`, `eval_resize_crop`: a quarter of
the bytes through shared memory and to the device) and the model normalises them on the device
(clipit.models.pixels); `eval_transform` gives the float32 form directly. Both forms give the
same numbers: `normalize` here and `normalize_pixels` there compute (x - mean*255) * (1 / (std*255))
in float32.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image

from clipit.models.pixels import CLIP_MEAN, CLIP_STD  # the model's input statistics, defined once

_MEAN_255 = np.array(CLIP_MEAN, np.float32) * 255
_INV_STD_255 = 1.0 / (np.array(CLIP_STD, np.float32) * 255)


# ----------------------------------------------------------------------------------------- normalising


def normalize(image: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """uint8 RGB [H, W, 3] to CLIP-normalised float32 [H, W, 3] (optionally into `out`).

    Works on rows of W*3 values: numpy broadcasting over a trailing axis of 3 is ~8x slower.
    """
    height, width, _ = image.shape
    mean_row, inv_row = _rows(width)
    if out is None:
        out = np.empty((height, width, 3), np.float32)
    flat = out.reshape(height, width * 3)
    np.subtract(image.reshape(height, width * 3), mean_row, out=flat, dtype=np.float32)
    flat *= inv_row
    return out


@functools.lru_cache(maxsize=8)
def _rows(width: int) -> tuple[np.ndarray, np.ndarray]:
    return np.tile(_MEAN_255, width), np.tile(_INV_STD_255, width)


# ---------------------------------------------------------------------------------------- eval transform


def eval_transform(image: np.ndarray, size: int, out: np.ndarray | None = None) -> np.ndarray:
    """transformers' CLIPImageProcessor: bicubic shorter side -> size, centre crop, normalise (NHWC)."""
    return normalize(eval_resize_crop(image, size), out)


def eval_resize_crop(image: np.ndarray, size: int, out: np.ndarray | None = None) -> np.ndarray:
    """eval_transform's geometry alone: uint8 RGB [size, size, 3] (optionally into uint8 `out`).

    Pillow's bicubic resize of uint8 rounds to uint8 itself, so normalising this later (on the device)
    gives exactly eval_transform's values.
    """
    height, width = image.shape[:2]
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(size * long / short)  # transformers truncates, it does not round
    new_w, new_h = (size, new_long) if width <= height else (new_long, size)
    resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BICUBIC))
    top, left = (new_h - size) // 2, (new_w - size) // 2
    crop = resized[top : top + size, left : left + size]
    if out is None:
        return np.ascontiguousarray(crop)
    out[...] = crop
    return out


def eval_batch(images: list[np.ndarray], size: int) -> np.ndarray:
    """Several decoded images to one float32 batch [B, size, size, 3] (eval and embed)."""
    batch = np.empty((len(images), size, size, 3), np.float32)
    for i, image in enumerate(images):
        eval_transform(image, size, out=batch[i])
    return batch


# --------------------------------------------------------------------------------------- train transform


@dataclass(frozen=True)
class TrainAugment:
    """What the train transform does; built from `[data.loader]` by the loader."""

    size: int
    crop_scale: tuple[float, float] = (0.5, 1.0)  # share of the image area kept by the random crop
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # width/height of the crop
    flip: bool = True
    color_jitter: float = 0.0  # brightness/contrast/saturation factors drawn from [1-s, 1+s]


def train_transform(
    image: np.ndarray, augment: TrainAugment, rng: random.Random, out: np.ndarray | None = None
) -> tuple[np.ndarray, bool]:
    """Random resized crop + flip (+ jitter) to uint8 RGB [size, size, 3]; returns (pixels, flipped).

    Not normalised: the loader hands uint8 over and the model normalises on the device (see the module
    docstring); `normalize(pixels)` gives the float32 form. With `out` (uint8, C-contiguous), OpenCV
    writes the last stage straight into it: no extra copy of the image.
    """
    import cv2  # here, not at the top: eval and embed (eval_transform) do not need OpenCV

    top, left, crop_h, crop_w = random_crop_box(image.shape[0], image.shape[1], augment, rng)
    crop = image[top : top + crop_h, left : left + crop_w]
    flipped = bool(augment.flip and rng.random() < 0.5)  # drawn before the jitter's numbers, as always
    jitter = augment.color_jitter > 0
    # Bilinear (torchvision's default) unless an axis shrinks more than 2x: up to 2x its two taps still
    # weigh every source pixel (at exactly 2x it is the 2x2 area mean), and it costs a fifth of
    # INTER_AREA, which at factors between 1 and 2 costs as much as the JPEG decode. Beyond 2x,
    # bilinear would skip pixels (aliasing): INTER_AREA.
    shrinking = max(crop_h, crop_w) > 2 * augment.size
    resized = cv2.resize(
        crop,
        (augment.size, augment.size),
        dst=out if not (flipped or jitter) else None,
        interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR,
    )
    if flipped:  # cv2.flip: 30x faster than copying numpy's reversed view
        resized = cv2.flip(resized, 1, dst=out if not jitter else None)
    if jitter:
        resized = _color_jitter(resized, augment.color_jitter, rng)
    return _into(resized, out), flipped


def _into(pixels: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """`pixels` stored in `out` (when given); OpenCV already wrote there unless it had to reallocate."""
    if out is None:
        return pixels
    if not np.may_share_memory(pixels, out):
        out[...] = pixels
    return out


def random_crop_box(
    height: int, width: int, augment: TrainAugment, rng: random.Random
) -> tuple[int, int, int, int]:
    """(top, left, h, w) as torchvision's RandomResizedCrop draws it: 10 tries, then a centre crop."""
    area = height * width
    log_lo, log_hi = math.log(augment.crop_ratio[0]), math.log(augment.crop_ratio[1])
    for _ in range(10):
        target = area * rng.uniform(*augment.crop_scale)
        ratio = math.exp(rng.uniform(log_lo, log_hi))
        w = round(math.sqrt(target * ratio))
        h = round(math.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, height - h), rng.randint(0, width - w), h, w
    ratio = width / height  # fallback: the largest centre crop within the allowed ratios
    if ratio < augment.crop_ratio[0]:
        w, h = width, round(width / augment.crop_ratio[0])
    elif ratio > augment.crop_ratio[1]:
        h, w = height, round(height * augment.crop_ratio[1])
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def _color_jitter(image: np.ndarray, strength: float, rng: random.Random) -> np.ndarray:
    """Brightness, contrast, saturation in torchvision's order and meaning, clipping after each."""
    brightness, contrast, saturation = (rng.uniform(1 - strength, 1 + strength) for _ in range(3))
    luma = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601, as Pillow's grayscale
    pixels = np.clip(image.astype(np.float32) * brightness, 0, 255)
    mean = float((pixels @ luma).mean())
    pixels = np.clip(mean + (pixels - mean) * contrast, 0, 255)
    gray = (pixels @ luma)[..., None]
    pixels = np.clip(gray + (pixels - gray) * saturation, 0, 255)
    return (pixels + 0.5).astype(np.uint8)


def sample_rng(seed: int, epoch: int, key: str) -> random.Random:
    """The augmentation RNG of one sample: fixed by (seed, epoch, key), whatever the worker or order.

    Python's Random, not numpy's: creating a numpy Generator costs ~5x more, per sample.
    """
    material = f"{seed}\x00{epoch}\x00{key}".encode()
    return random.Random(int.from_bytes(hashlib.blake2b(material, digest_size=16).digest(), "little"))


# ------------------------------------------------------------------------------------------- captions

_SIDE = re.compile(r"\b(sinistr|destr)([aeio])\b", re.IGNORECASE)
_OTHER_SIDE = {"sinistr": "destr", "destr": "sinistr"}


def swap_left_right(caption: str) -> str:
    """Swap sinistra/destra (and -o, -e, -i forms) keeping capitalisation: the caption of a flipped image."""

    def swap(match: re.Match[str]) -> str:
        stem, ending = match.group(1), match.group(2)
        other = _OTHER_SIDE[stem.lower()]
        if stem.isupper():
            other = other.upper()
        elif stem[0].isupper():
            other = other.capitalize()
        return other + ending

    return _SIDE.sub(swap, caption)
