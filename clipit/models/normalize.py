"""`l2_normalize`: the one normalisation of embeddings, for host (numpy) and device (jax) arrays.

Light on purpose: eval and search normalise numpy vectors without loading jax.
"""

from __future__ import annotations

import numpy as np

EPSILON = 1e-12  # a floor under the norm: an all-zero row stays zero instead of becoming NaN


def l2_normalize(x):
    """Rows (the last axis) scaled to unit L2 norm, in float32. numpy in, numpy out (vectors already on
    the host stay there); jax arrays otherwise (inside jitted code too)."""
    if isinstance(x, np.ndarray):
        x = np.asarray(x, np.float32)
        return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), EPSILON)
    import jax.numpy as jnp

    x = x.astype(jnp.float32)
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), EPSILON)
