"""`model.remat`: each block recomputed in the backward pass gives the same gradients in less memory."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from clipit.config import load_config
from clipit.models.build import build_model
from clipit.train.model_state import split_model

BATCH, SIDE, LENGTH, LAYERS = 16, 32, 24, 4
SIZES = [
    "model.vision.hidden_size=32",
    f"model.vision.num_hidden_layers={LAYERS}",
    "model.vision.num_attention_heads=2",
    "model.vision.intermediate_size=128",
    "model.vision.patch_size=4",  # 64 tokens per image: activations that dominate the step's memory
    f"model.vision.image_size={SIDE}",
    "model.text.vocab_size=128",
    "model.text.hidden_size=32",
    f"model.text.num_hidden_layers={LAYERS}",
    "model.text.num_attention_heads=2",
    "model.text.intermediate_size=128",
    "model.text.max_position_embeddings=32",
    "model.text.dropout=0.1",  # dropout on: the recomputed blocks must draw the same masks
    f"model.max_text_length={LENGTH}",
    "model.projection_dim=16",
]


def _batch():
    rng = np.random.default_rng(0)
    return (
        rng.normal(size=(BATCH, SIDE, SIDE, 3)).astype(np.float32),
        rng.integers(5, 128, (BATCH, LENGTH)).astype(np.int32),
        np.ones((BATCH, LENGTH), np.int32),
    )


def _loss_fn(remat: bool):
    """A contrastive-style loss through both towers in training mode, and its inputs."""
    config = load_config(None, [*SIZES, f"model.remat={str(remat).lower()}"])
    parts, params, rest = split_model(build_model(config.model, seed=0)[0])

    def loss(params, pixels, ids, mask):
        model = parts.merge(params, rest)
        image = model.project_image(model.image_features(pixels, deterministic=False))
        text = model.project_text(model.text_features(ids, mask, deterministic=False))
        return -jax.nn.log_softmax(10.0 * text @ image.T).trace() / BATCH

    return loss, (params, *_batch())


@pytest.fixture(scope="module")
def both():
    return {remat: _loss_fn(remat) for remat in (False, True)}


def test_remat_gives_the_same_gradients(both):
    (plain, inputs), (remat, _) = both[False], both[True]
    expected, got = jax.jit(jax.grad(plain))(*inputs), jax.jit(jax.grad(remat))(*inputs)
    assert expected.keys() == got.keys()
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-6, err_msg=key)
    assert any(float(np.abs(g).max()) > 1e-3 for g in expected.values())  # a real gradient, not zeros


def test_remat_keeps_fewer_activations_for_the_backward_pass(both):
    """What the forward pass hands the backward pass (the residuals of `jax.vjp`: activations, plus
    the parameters either way) shrinks to about the blocks' inputs.

    This is the memory remat saves on an accelerator. XLA's CPU compiler reports the same temporary
    buffer size for a rematerialised and a plain step (it does so for a bare `jax.checkpoint` too), so
    the compiled step's memory_analysis() does not show it on this backend.
    """

    def residual_bytes(remat: bool) -> int:
        loss, (params, *batch) = both[remat]
        # jitted: the pullback is a pytree of its residuals, which a jitted function can return
        pullback = jax.jit(lambda p, *b: jax.vjp(lambda q: loss(q, *b), p)[1])(params, *batch)
        return sum(x.nbytes for x in jax.tree.leaves(pullback))

    assert residual_bytes(True) < 0.3 * residual_bytes(False)
