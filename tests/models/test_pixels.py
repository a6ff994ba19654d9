"""normalize_pixels: the on-device CLIP normalisation of the loader's uint8 pixels."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from clipit.data import preprocess
from clipit.models import export, pixels
from clipit.models.pixels import normalize_pixels


def test_uint8_pixels_match_the_formula_and_the_host_normalisation_exactly():
    image = np.random.default_rng(0).integers(0, 256, (3, 17, 23, 3), dtype=np.uint8)
    image[0, 0, 0] = (0, 128, 255)  # the extremes and the middle
    got = np.asarray(jax.jit(normalize_pixels)(image))
    assert got.dtype == np.float32 and got.shape == image.shape
    formula = (image / 255.0 - np.array(pixels.CLIP_MEAN)) / np.array(pixels.CLIP_STD)  # float64
    np.testing.assert_allclose(got, formula, atol=1e-5, rtol=0)
    host = np.stack([preprocess.normalize(one) for one in image])
    np.testing.assert_allclose(got, host, atol=1e-6, rtol=0)  # bit-equal on CPU; 1 ulp of slack elsewhere


def test_float_pixels_are_taken_as_normalised_and_other_dtypes_refused():
    already = np.random.default_rng(1).normal(size=(2, 4, 4, 3)).astype(np.float32)
    assert np.array_equal(np.asarray(jax.jit(normalize_pixels)(already)), already)
    with pytest.raises(TypeError, match="uint8"):
        normalize_pixels(np.zeros((1, 2, 2, 3), np.int32))


def test_the_mean_and_std_are_the_same_everywhere():
    """One set of statistics for the host transform, the device normalisation and the export."""
    assert list(pixels.CLIP_MEAN) == list(preprocess.CLIP_MEAN) == list(export.CLIP_MEAN)
    assert list(pixels.CLIP_STD) == list(preprocess.CLIP_STD) == list(export.CLIP_STD)
