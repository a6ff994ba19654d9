"""Random init: each module names its parameters' initialisers, and they are transformers' own.

CLIP's width-aware init for the vision tower and the projections (`CLIPPreTrainedModel._init_weights`,
factor 1), BERT's `initializer_range` for the text tower, zero biases, unit LayerNorm scales, the
configured logit scale; drawn reproducibly from the seed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from clipit.models.build import create_model
from clipit.models.init import Normal, initializers
from clipit.models.layers import Linear
from clipit.models.sizes import TextSizes, VisionSizes

VISION = VisionSizes(
    hidden_size=64,
    num_hidden_layers=3,
    num_attention_heads=4,
    intermediate_size=256,
    patch_size=8,
    image_size=32,
)
TEXT = TextSizes(
    vocab_size=500,
    hidden_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=192,
    max_position_embeddings=40,
    initializer_range=0.05,
)


def expected_std(name: str) -> float:
    """The std transformers initialises each weight with, written out per parameter."""
    width, depth = VISION.hidden_size, VISION.num_hidden_layers
    in_proj = width**-0.5 * (2 * depth) ** -0.5
    if name == "visual_projection/kernel":
        return VISION.hidden_size**-0.5
    if name == "text_projection/kernel":
        return TEXT.hidden_size**-0.5
    if name.startswith("text_model/"):
        return TEXT.initializer_range
    if name == "vision_model/class_embedding":
        return width**-0.5
    if "/self_attn/out/" in name:
        return width**-0.5
    if "/self_attn/" in name or "/fc2/" in name:
        return in_proj
    if "/fc1/" in name:
        return (2 * width) ** -0.5
    assert name in ("vision_model/patch_embedding", "vision_model/position_embedding"), name
    return 0.02


@pytest.fixture(scope="module")
def params() -> dict[str, np.ndarray]:
    model = create_model(VISION, TEXT, 32, 1.5, jnp.float32, seed=7)
    return {
        "/".join(map(str, p)): np.asarray(v.get_value())
        for p, v in nnx.to_flat_state(nnx.state(model, nnx.Param))
    }


def test_random_init_follows_transformers(params):
    checked = 0
    for name, value in params.items():
        leaf = name.rsplit("/", 1)[-1]
        if name == "logit_scale":
            assert value.shape == () and value == np.float32(1.5)
        elif leaf == "bias":
            assert not value.any(), name
        elif leaf == "scale":
            assert (value == 1).all(), name
        else:
            std = expected_std(name)
            tolerance = 4 / np.sqrt(2 * value.size)  # ~4 standard errors of a sample std
            assert abs(value.std() / std - 1) < tolerance, (name, value.std(), std)
            assert abs(value.mean()) < 4 * std / np.sqrt(value.size), name
            checked += 1
    # vision: patch, class, positions + 6 per block; text: 3 tables + 6 per layer + pooler; 2 projections
    assert checked == 3 + 6 * VISION.num_hidden_layers + 3 + 6 * TEXT.num_hidden_layers + 1 + 2


def test_same_seed_same_model_and_every_parameter_has_its_module_initialiser(params):
    again = create_model(VISION, TEXT, 32, 1.5, jnp.float32, seed=7)
    other = create_model(VISION, TEXT, 32, 1.5, jnp.float32, seed=8)
    flat = {"/".join(map(str, p)): v.get_value() for p, v in nnx.to_flat_state(nnx.state(again, nnx.Param))}
    assert all(np.array_equal(flat[name], value) for name, value in params.items())
    other_fc1 = other.vision_model.layers[0].fc1.kernel.get_value()
    assert not np.array_equal(np.asarray(other_fc1), params["vision_model/layers/0/fc1/kernel"])
    assert set(initializers(again)) == set(params)


def test_an_eagerly_built_module_draws_from_the_same_initialiser():
    """Built with nnx.Rngs (jax's random numbers), a layer's weights have the std its module names."""
    layer = Linear(256, 256, kernels="cpu", kernel_init=Normal(0.1), rngs=nnx.Rngs(0))
    kernel = np.asarray(layer.kernel.get_value())
    assert abs(kernel.std() / 0.1 - 1) < 0.02
    assert not np.asarray(layer.bias.get_value()).any()
    assert layer.kernel_init == Normal(0.1)
    assert jax.tree.leaves(nnx.state(layer, nnx.Param))  # kernel and bias, nothing else
