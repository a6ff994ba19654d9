"""The image towers' input normalisation, on the device: uint8 RGB -> CLIP-normalised float32.

The loader hands pixels over as uint8 (a quarter of the bytes of float32 through shared memory and to
the accelerator) and `DualEncoder.image_features` calls `normalize_pixels` before the image tower,
inside the jitted steps, where it costs next to nothing. Float input is taken as already normalised
(`preprocess.eval_transform`, tests, benchmarks) and passes through unchanged.

The arithmetic is clipit.data.preprocess.normalize's, in the same order and precision, so both paths
give the same values: (float32(x) - mean*255) * (1 / (std*255)).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import jax

# CLIP's image processor statistics: the one definition, used by clipit.data.preprocess and written
# to the export's preprocessor_config.json. This module loads jax only when it normalises, so the data
# layer can import these without it.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

_MEAN_255 = np.array(CLIP_MEAN, np.float32) * 255
_INV_STD_255 = 1.0 / (np.array(CLIP_STD, np.float32) * 255)


def normalize_pixels(pixels: jax.Array) -> jax.Array:
    """NHWC uint8 RGB -> CLIP-normalised float32; float input (already normalised) is returned as is."""
    import jax.numpy as jnp

    if jnp.issubdtype(pixels.dtype, jnp.floating):
        return pixels
    if pixels.dtype != jnp.uint8:
        raise TypeError(f"pixel_values must be uint8 RGB or normalised floats, not {pixels.dtype}")
    return (pixels.astype(jnp.float32) - _MEAN_255) * _INV_STD_255
