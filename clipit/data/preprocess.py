"""Image preprocessing: the one place for decoding and for the train and eval transforms.

Used by the loader (training and validation batches), eval and embed alike, so a model sees the same
pixels at training and at inference time.

- `decode_image` / `load_image`: bytes or a file to an RGB uint8 array [H, W, 3]. JPEG goes through
  simplejpeg (about twice as fast as Pillow here); anything else, JPEGs simplejpeg refuses and JPEGs
  whose EXIF says they are rotated, through Pillow. Images over `max_pixels` are refused before
  decoding (decompression bombs).
- `upright_rgb`: the one conversion of a decoded Pillow image, shared with build-shards so that training
  and inference see the same pixels: EXIF orientation applied (phone photos are stored sideways with a
  tag saying so), 16-bit images scaled to 8 bits (65535 -> 255, where a plain convert clips them to
  near white), transparency composited onto white, grayscale/CMYK/palette to RGB (as transformers' CLIP
  image processor does).
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
import io
import math
import random
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import simplejpeg
from PIL import Image, ImageOps

from clipit.errors import DataError
from clipit.models.pixels import CLIP_MEAN, CLIP_STD  # the model's input statistics, defined once

DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own decompression-bomb threshold

_JPEG_MAGIC = b"\xff\xd8\xff"
_EXIF_ORIENTATION = 0x0112
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # Pillow's modes for 16-bit grayscale
_SIMPLEJPEG_COLORSPACES = ("YCbCr", "Gray")  # others (CMYK, YCCK) go through Pillow, as in transformers
_MEAN_255 = np.array(CLIP_MEAN, np.float32) * 255
_INV_STD_255 = 1.0 / (np.array(CLIP_STD, np.float32) * 255)


# --------------------------------------------------------------------------------------------- decoding


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, name: str = "image") -> np.ndarray:
    """Decode image bytes to an RGB uint8 array [H, W, 3]; DataError (naming `name`) if impossible."""
    if not data:
        raise DataError(f"{name}: empty image data", "remove the file or rebuild the shards")
    if data[:3] == _JPEG_MAGIC:
        try:
            height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
        except ValueError:
            colorspace = None  # let Pillow try and report
        else:
            _check_pixels(width, height, max_pixels, name)
            if colorspace in _SIMPLEJPEG_COLORSPACES and _jpeg_orientation(data) == 1:
                try:
                    return simplejpeg.decode_jpeg(data, colorspace="RGB")
                except ValueError:
                    pass  # truncated or exotic: Pillow decides (and names the problem)
    return _decode_with_pillow(io.BytesIO(data), max_pixels, name)


def load_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file (eval, embed) to RGB uint8 [H, W, 3]; DataError if unreadable."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read image ({exc.strerror or exc})", "check the path") from None
    return decode_image(data, max_pixels=max_pixels, name=str(path))


def _decode_with_pillow(stream: io.BytesIO, max_pixels: int, name: str) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(stream) as image:
                _check_pixels(image.width, image.height, max_pixels, name)
                image.load()
                return to_rgb(image)
    except DataError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        # OSError covers truncated files and UnidentifiedImageError (not an image at all).
        raise DataError(
            f"{name}: not a readable image ({exc})", "remove it or replace it with a valid file"
        ) from None


def _jpeg_orientation(data: bytes) -> int:
    """The EXIF orientation of a JPEG (1 = stored upright, also when it has no EXIF).

    Walks the marker segments before the image data (a few dozen bytes to read); only a JPEG that has
    an EXIF segment is handed to Pillow's header parser, so files without EXIF (every training shard)
    cost nothing extra.
    """
    position = 2  # after SOI
    while position + 4 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if marker in (0xD9, 0xDA):  # end of image, start of scan: metadata comes before these
            break
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        if marker == 0xE1 and bytes(data[position + 4 : position + 10]) == b"Exif\x00\x00":
            try:
                with Image.open(io.BytesIO(data)) as image:
                    return int(image.getexif().get(_EXIF_ORIENTATION, 1))
            except (OSError, ValueError, SyntaxError, TypeError):
                return 1  # unreadable EXIF: the image itself may still decode
        position += 2 + length
    return 1


def _check_pixels(width: int, height: int, max_pixels: int, name: str) -> None:
    if width * height > max_pixels:
        raise DataError(
            f"{name}: {width}x{height} image exceeds the {max_pixels:,}-pixel limit (decompression bomb guard)",
            "resize the image, or raise data.shards.max_image_pixels if it is genuine",
        )
    if width < 1 or height < 1:
        raise DataError(f"{name}: image has no pixels ({width}x{height})")


def to_rgb(image: Image.Image) -> np.ndarray:
    """A Pillow image as RGB uint8 [H, W, 3], upright (see `upright_rgb`)."""
    return np.asarray(upright_rgb(image))


def upright_rgb(image: Image.Image) -> Image.Image:
    """A decoded Pillow image as the RGB image a model sees (build-shards, the loader, eval and embed).

    EXIF orientation applied; 16-bit grayscale scaled to 8 bits; transparency onto white (as
    transformers does); any other mode (L, CMYK, P, ...) converted to RGB.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode in _SIXTEEN_BIT_MODES:
        # Scaled, not clipped: Pillow's convert("L") clips values above 255, so a 16-bit photo would be
        # nearly white. /257 maps 0..65535 onto 0..255 exactly (65535 = 255 * 257).
        wide = np.asarray(image).astype(np.float32)
        image = Image.fromarray(np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8), "L")
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB") if image.mode != "RGB" else image


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
