"""One decode for build-shards and for eval/embed: EXIF orientation and 16-bit images, on real files."""

from __future__ import annotations

import io

import numpy as np
import pytest
import simplejpeg
from PIL import Image

from clipit.data import decode
from clipit.data.shards import images

# Large enough that build-shards keeps the size (no resize to compare through).
SETTINGS = images.ImageSettings(image_side=512, jpeg_quality=95, min_image_side=8, max_image_pixels=10**7)


def _scene(height: int = 48, width: int = 64) -> np.ndarray:
    """Asymmetric blocks of colour (a JPEG keeps them) so that any rotation or flip shows."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[: height // 2, : width // 2] = (220, 30, 30)
    pixels[: height // 2, width // 2 :] = (30, 200, 40)
    pixels[height // 2 :, : width // 3] = (40, 40, 210)
    pixels[height // 2 :, width // 3 :] = (240, 240, 60)
    return pixels


def _jpeg_with_orientation(pixels: np.ndarray, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=98, exif=exif.tobytes())
    return buffer.getvalue()


def _shard_pixels(data: bytes) -> np.ndarray:
    """What build-shards stores for `data`, decoded as the loader decodes it."""
    encoded = images.reencode(data, SETTINGS)
    assert isinstance(encoded, images.Encoded), encoded
    return decode.decode_image(encoded.jpeg)


def _close(a: np.ndarray, b: np.ndarray, tolerance: float = 4.0) -> bool:
    return a.shape == b.shape and float(np.abs(a.astype(int) - b.astype(int)).mean()) < tolerance


@pytest.mark.parametrize(
    "orientation,upright",
    [
        (1, lambda p: p),
        (3, lambda p: np.rot90(p, 2)),
        (6, lambda p: np.rot90(p, -1)),  # a phone held upright: stored sideways, shown turned clockwise
        (8, lambda p: np.rot90(p, 1)),
        (2, lambda p: p[:, ::-1]),
    ],
)
def test_exif_rotated_jpeg_is_upright_for_embed_and_build_shards_alike(tmp_path, orientation, upright):
    stored = _scene()
    path = tmp_path / "photo.jpg"
    path.write_bytes(_jpeg_with_orientation(stored, orientation))
    expected = upright(stored)

    embedded = decode.load_image(path)  # what eval and embed read
    assert _close(embedded, expected)
    assert _close(_shard_pixels(path.read_bytes()), embedded)
    with Image.open(path) as image:  # a Pillow image handed to the library (encode_images, serve)
        assert _close(decode.to_rgb(image), expected)


@pytest.mark.parametrize("mode_bits", ["gray16", "gray16_dark"])
def test_16_bit_png_is_scaled_to_8_bits_not_clipped_to_white(tmp_path, mode_bits):
    top = 65535 if mode_bits == "gray16" else 20000
    ramp = np.linspace(0, top, 48 * 64).reshape(48, 64).astype(np.uint16)
    path = tmp_path / "scan.png"
    Image.fromarray(ramp).save(path)
    with Image.open(path) as opened:
        assert opened.mode.startswith("I")  # really a 16-bit file
    expected = np.repeat(np.rint(ramp / 257.0).astype(np.uint8)[..., None], 3, axis=2)

    embedded = decode.load_image(path)
    np.testing.assert_array_equal(embedded, expected)
    assert _close(_shard_pixels(path.read_bytes()), expected)


def test_jpeg_without_exif_still_takes_the_fast_path_unchanged():
    stored = _scene()
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, format="JPEG", quality=95)
    data = buffer.getvalue()
    assert decode._jpeg_orientation(data) == 1
    assert decode._jpeg_orientation(_jpeg_with_orientation(stored, 6)) == 6
    np.testing.assert_array_equal(decode.decode_image(data), simplejpeg.decode_jpeg(data, colorspace="RGB"))
    # the loader hands over memoryview slices of a shard's Arrow buffer
    rotated = _jpeg_with_orientation(stored, 6)
    assert decode.decode_image(memoryview(rotated)).shape == (64, 48, 3)
