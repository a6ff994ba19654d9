"""Image preprocessing: HF parity of the eval transform, decoding of awkward images, the train transform."""

from __future__ import annotations

import dataclasses
import io
import random

import numpy as np
import pytest
import simplejpeg
from PIL import Image, ImageEnhance
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from clipit.data import decode, preprocess
from clipit.errors import DataError


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg_pil(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def _hf(image: Image.Image, size: int) -> np.ndarray:
    # CLIPImageProcessor falls back to this class without torchvision; name it to be explicit.
    processor = CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    return processor(images=image, return_tensors="np")["pixel_values"][0].transpose(1, 2, 0)


@pytest.mark.parametrize("height,width", [(37, 53), (300, 200), (64, 64), (225, 224), (17, 400)])
@pytest.mark.parametrize("size", [24, 224])
def test_eval_transform_matches_clip_image_processor(height, width, size):
    image = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    ours = preprocess.eval_transform(image, size)
    assert ours.shape == (size, size, 3) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, _hf(Image.fromarray(image), size), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "make",
    [
        lambda a: Image.fromarray(a).convert("L"),  # grayscale
        lambda a: Image.fromarray(np.dstack([a, (a[..., :1] > 128) * 255]).astype(np.uint8), "RGBA"),  # alpha
        lambda a: Image.fromarray(a).convert("P", palette=Image.Palette.ADAPTIVE, colors=16),  # palette
    ],
    ids=["gray", "rgba", "palette"],
)
def test_decoded_png_modes_match_clip_image_processor(make):
    image = make(np.random.default_rng(1).integers(0, 256, (40, 30, 3), dtype=np.uint8))
    ours = preprocess.eval_transform(decode.decode_image(_png(image)), 24)
    np.testing.assert_allclose(ours, _hf(image, 24), atol=1e-5, rtol=0)


def test_transparency_is_composited_on_white():
    image = np.zeros((4, 4, 4), np.uint8)
    image[..., 0] = 200  # red, but fully transparent except one pixel
    image[0, 0, 3] = 255
    decoded = decode.decode_image(_png(Image.fromarray(image, "RGBA")))
    assert decoded.tolist()[0][0] == [200, 0, 0]
    assert decoded.tolist()[3][3] == [255, 255, 255]


def test_jpeg_decoding_modes():
    rgb = np.random.default_rng(2).integers(0, 256, (20, 28, 3), dtype=np.uint8)
    # YCbCr JPEG through simplejpeg equals Pillow's decode of the same bytes (both libjpeg-turbo).
    data = simplejpeg.encode_jpeg(rgb, quality=90)
    assert np.array_equal(decode.decode_image(data), np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    gray = decode.decode_image(_jpeg_pil(Image.fromarray(rgb).convert("L")))
    assert gray.shape == (20, 28, 3) and np.array_equal(gray[..., 0], gray[..., 2])
    cmyk_bytes = _jpeg_pil(Image.fromarray(rgb).convert("CMYK"))
    expected = np.asarray(Image.open(io.BytesIO(cmyk_bytes)).convert("RGB"))
    assert np.array_equal(decode.decode_image(cmyk_bytes), expected)  # Pillow's conversion, as HF


@pytest.mark.parametrize(
    "data,words",
    [
        (b"", "empty"),
        (b"not an image at all", "not a readable image"),
        (
            simplejpeg.encode_jpeg(np.full((64, 64, 3), 90, np.uint8))[:300],
            "not a readable image",
        ),  # truncated
        (b"\xff\xd8\xff" + b"\x00" * 50, "not a readable image"),  # JPEG magic, garbage after
    ],
    ids=["empty", "garbage", "truncated-jpeg", "bad-jpeg-header"],
)
def test_unreadable_bytes_raise_data_error_naming_the_image(data, words):
    with pytest.raises(DataError, match=words) as error:
        decode.decode_image(data, name="shard-7/k0001")
    assert "shard-7/k0001" in error.value.message


@pytest.mark.parametrize("encode", [lambda a: simplejpeg.encode_jpeg(a), lambda a: _png(Image.fromarray(a))])
def test_decompression_bomb_is_refused_before_decoding(encode):
    data = encode(np.zeros((100, 120, 3), np.uint8))
    assert decode.decode_image(data, max_pixels=12_000).shape == (100, 120, 3)
    with pytest.raises(DataError, match="decompression bomb"):
        decode.decode_image(data, max_pixels=11_999)


def test_load_image_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="missing.jpg"):
        decode.load_image(tmp_path / "missing.jpg")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(DataError, match="bad.png"):
        decode.load_image(tmp_path / "bad.png")
    good = np.random.default_rng(3).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    (tmp_path / "good.png").write_bytes(_png(Image.fromarray(good)))
    assert np.array_equal(decode.load_image(tmp_path / "good.png"), good)


def test_normalize_against_the_formula():
    image = np.random.default_rng(4).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    expected = (image / 255.0 - np.array(preprocess.CLIP_MEAN)) / np.array(preprocess.CLIP_STD)
    np.testing.assert_allclose(preprocess.normalize(image), expected, atol=1e-5)


@pytest.mark.parametrize(
    "caption,swapped",
    [
        ("un gatto a sinistra", "un gatto a destra"),
        ("Sinistra e destra", "Destra e sinistra"),
        ("il piede destro e il sinistro", "il piede sinistro e il destro"),
        ("le mani sinistre, i lati destri", "le mani destre, i lati sinistri"),
        ("A DESTRA!", "A SINISTRA!"),
        ("un cane (sinistra)", "un cane (destra)"),
        ("maldestro con destrezza, sinistrorso", "maldestro con destrezza, sinistrorso"),  # other words
        ("nessun lato", "nessun lato"),
    ],
)
def test_swap_left_right(caption, swapped):
    assert preprocess.swap_left_right(caption) == swapped
    assert preprocess.swap_left_right(swapped) == caption


def _left_red_right_blue(height=30, width=40) -> np.ndarray:
    image = np.zeros((height, width, 3), np.uint8)
    image[:, : width // 2, 0] = 255
    image[:, width // 2 :, 2] = 255
    return image


def test_flip_mirrors_the_image_and_is_reported():
    image = _left_red_right_blue()
    # Crop = the whole image (scale 1, ratio = the image's), so only the flip changes the layout.
    augment = preprocess.TrainAugment(size=16, crop_scale=(1.0, 1.0), crop_ratio=(40 / 30, 40 / 30))
    seen = set()
    for seed in range(12):
        pixels, flipped = preprocess.train_transform(image, augment, random.Random(seed))
        red_on_left = pixels[:, 0, 0].mean() > pixels[:, 0, 2].mean()
        assert red_on_left != flipped
        seen.add(flipped)
    assert seen == {True, False}
    no_flip = preprocess.TrainAugment(size=16, flip=False)
    assert not any(preprocess.train_transform(image, no_flip, random.Random(s))[1] for s in range(12))


def test_train_transform_is_deterministic_for_a_seed_and_varies_across_seeds():
    image = np.random.default_rng(5).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    augment = preprocess.TrainAugment(size=24, color_jitter=0.4)
    first, flip1 = preprocess.train_transform(image, augment, preprocess.sample_rng(3, 1, "cc3m/9"))
    again, flip2 = preprocess.train_transform(image, augment, preprocess.sample_rng(3, 1, "cc3m/9"))
    assert first.shape == (24, 24, 3) and first.dtype == np.uint8  # normalised later, on the device
    assert np.array_equal(first, again) and flip1 == flip2
    other_epoch, _ = preprocess.train_transform(image, augment, preprocess.sample_rng(3, 2, "cc3m/9"))
    assert not np.array_equal(first, other_epoch)


@pytest.mark.parametrize("jitter", [0.0, 0.3])
def test_train_transform_into_a_batch_slot_equals_the_returned_image(jitter):
    """The loader passes its uint8 batch slot as `out`: same pixels, flipped or not, jitter or not."""
    image = np.random.default_rng(9).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    augment = preprocess.TrainAugment(size=16, color_jitter=jitter)
    batch = np.full((12, 16, 16, 3), 7, np.uint8)
    flips = set()
    for seed in range(12):
        pixels, flipped = preprocess.train_transform(image, augment, random.Random(seed))
        stored, again = preprocess.train_transform(image, augment, random.Random(seed), out=batch[seed])
        assert np.shares_memory(stored, batch) and again == flipped
        assert np.array_equal(batch[seed], pixels)
        flips.add(flipped)
        if flipped and not jitter:  # the flip is a true mirror of the unflipped crop-resize
            no_flip = dataclasses.replace(augment, flip=False)
            unflipped, _ = preprocess.train_transform(image, no_flip, random.Random(seed))
            assert np.array_equal(pixels, unflipped[:, ::-1])
    assert flips == {True, False}


@pytest.mark.parametrize("factor", [2, 4])
def test_shrinking_the_crop_averages_every_source_pixel(factor):
    """A 2x (bilinear) or 4x (area) shrink is the mean of each block: no pixel skipped, no aliasing."""
    noise = np.random.default_rng(factor).integers(0, 256, (16 * factor, 16 * factor, 3), dtype=np.uint8)
    whole = preprocess.TrainAugment(size=16, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip=False)
    pixels, _ = preprocess.train_transform(noise, whole, random.Random(0))
    block_means = noise.reshape(16, factor, 16, factor, 3).mean(axis=(1, 3))
    assert np.abs(pixels - block_means).max() <= 1


def test_eval_resize_crop_normalised_is_the_eval_transform():
    image = np.random.default_rng(10).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    pixels = preprocess.eval_resize_crop(image, 24)
    assert pixels.dtype == np.uint8 and pixels.shape == (24, 24, 3)
    assert np.array_equal(preprocess.normalize(pixels), preprocess.eval_transform(image, 24))
    slot = np.zeros((2, 24, 24, 3), np.uint8)
    preprocess.eval_resize_crop(image, 24, out=slot[1])
    assert np.array_equal(slot[1], pixels) and not slot[0].any()


def test_random_crop_box_respects_scale_and_ratio():
    augment = preprocess.TrainAugment(size=8, crop_scale=(0.3, 0.6))
    rng = random.Random(6)
    for _ in range(200):
        top, left, h, w = preprocess.random_crop_box(90, 120, augment, rng)
        assert 0 <= top and top + h <= 90 and 0 <= left and left + w <= 120
        assert 0.3 * 0.9 <= h * w / (90 * 120) <= 0.6 * 1.1  # rounding to whole pixels
        assert 3 / 4 * 0.9 <= w / h <= 4 / 3 * 1.1


def test_color_jitter_matches_pillow_enhancers():
    """Brightness, contrast, saturation with Pillow's ImageEnhance as the reference (within rounding)."""
    image = np.random.default_rng(7).integers(30, 220, (12, 10, 3), dtype=np.uint8)
    reference_rng = random.Random(8)
    factors = [reference_rng.uniform(1 - 0.3, 1 + 0.3) for _ in range(3)]
    ours = preprocess._color_jitter(image, 0.3, random.Random(8))
    pil = Image.fromarray(image)
    for enhancer, factor in zip(
        (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color), factors, strict=True
    ):
        pil = enhancer(pil).enhance(factor)
    assert np.abs(ours.astype(int) - np.asarray(pil).astype(int)).max() <= 3
    assert np.abs(ours.astype(int) - image.astype(int)).max() > 3  # it did change the image
