"""Original image bytes -> the shard's JPEG (shorter side `image_side`, never upscaled), or why not.

Every failure is a reason string, never an exception: build-shards counts it and goes on. The pixel count
is checked from the header before any pixel is decoded, so a small file that claims a huge image (a
decompression bomb) costs nothing. With an exclude index, the decoded image's perceptual hash is
compared against the evaluation images' (exclude.py): a near-duplicate is `eval_overlap`.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageFile

from clipit.data import decode
from clipit.data.shards import exclude

# A truncated file must fail, not decode into a half-grey image.
ImageFile.LOAD_TRUNCATED_IMAGES = False

EMPTY = "empty_image"
DECODE_ERROR = "decode_error"
BOMB = "decompression_bomb"
TOO_SMALL = "image_too_small"


@dataclass(frozen=True)
class ImageSettings:
    image_side: int
    jpeg_quality: int
    min_image_side: int
    max_image_pixels: int
    exclude: exclude.ExcludeIndex | None = None  # pHashes of evaluation images to keep out


@dataclass(frozen=True)
class Encoded:
    jpeg: bytes
    width: int
    height: int


def reencode(data: bytes, settings: ImageSettings) -> Encoded | str:
    if not data:
        return EMPTY
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we apply our own limit
            image = Image.open(io.BytesIO(data))
            width, height = image.size  # from the header only
    except Image.DecompressionBombError:
        return BOMB
    except Exception:  # PIL raises many types for garbage (OSError, SyntaxError, ValueError, ...)
        return DECODE_ERROR
    if width * height > settings.max_image_pixels:
        return BOMB
    if min(width, height) < settings.min_image_side:
        return TOO_SMALL
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # JPEG can decode at 1/2, 1/4, 1/8 scale for free; draft keeps at least the target size.
            scale = settings.image_side / min(width, height)
            if scale < 1:
                image.draft("RGB", (max(1, int(width * scale)), max(1, int(height * scale))))
            image.load()
            image = decode.upright_rgb(image)  # the same conversion as the loader, eval and embed
    except Exception:
        return DECODE_ERROR
    image = _shrink(image, settings.image_side)
    if settings.exclude and settings.exclude.near(exclude.perceptual_hash(image)):
        return exclude.EVAL_OVERLAP
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=settings.jpeg_quality)
    return Encoded(out.getvalue(), image.width, image.height)


def _shrink(image: Image.Image, side: int) -> Image.Image:
    """Shorter side to `side`, keeping the aspect ratio; smaller images keep their size."""
    short = min(image.size)
    if short <= side:
        return image
    width = max(1, round(image.width * side / short))
    height = max(1, round(image.height * side / short))
    if image.width <= image.height:
        width = side
    else:
        height = side
    return image.resize((width, height), Image.Resampling.BICUBIC)
