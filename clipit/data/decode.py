"""Decoding: bytes or a file to the RGB uint8 array [H, W, 3] every model input starts from.

- `decode_image` / `load_image`: JPEG goes through simplejpeg (about twice as fast as Pillow here);
  anything else, JPEGs simplejpeg refuses and JPEGs whose EXIF says they are rotated, through Pillow.
  Images over `max_pixels` are refused before decoding (decompression bombs).
- `upright_rgb`: the one conversion of a decoded Pillow image, shared with build-shards so that training
  and inference see the same pixels: EXIF orientation applied (phone photos are stored sideways with a
  tag saying so), 16-bit images scaled to 8 bits (65535 -> 255, where a plain convert clips them to
  near white), transparency composited onto white, grayscale/CMYK/palette to RGB (as transformers' CLIP
  image processor does).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import simplejpeg
from PIL import Image, ImageOps

from clipit.errors import DataError

DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own decompression-bomb threshold

_JPEG_MAGIC = b"\xff\xd8\xff"
_EXIF_ORIENTATION = 0x0112
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # Pillow's modes for 16-bit grayscale
_SIMPLEJPEG_COLORSPACES = ("YCbCr", "Gray")  # others (CMYK, YCCK) go through Pillow, as in transformers


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
