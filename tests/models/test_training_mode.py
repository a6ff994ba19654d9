"""What the trainer relies on: dropout only in training, RNG state in the split state, gradients."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from clipit.models import build_model
from tests.support.tiny_hf import model_config as tiny_model_config
from tests.support.tower_io import tokens


def test_pure_step_over_split_state_uses_and_advances_dropout_rng(checkpoints, pixels):
    model, _ = build_model(tiny_model_config(text={"dropout": 0.3}), seed=0)
    batch = tokens(checkpoints["bert"])
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    @functools.partial(jax.jit, static_argnames="deterministic")
    def step(params, rest, pixels, ids, mask, *, deterministic: bool):
        module = nnx.merge(graphdef, params, rest)
        text = module.text_features(ids, mask, deterministic=deterministic)
        image = module.image_features(pixels, deterministic=deterministic)
        _, _, new_rest = nnx.split(module, nnx.Param, ...)
        return text, image, new_rest

    args = (jnp.asarray(pixels), batch["input_ids"], batch["attention_mask"])
    text_a, image_a, rest_a = step(params, rest, *args, deterministic=False)
    text_b, _, _ = step(params, rest_a, *args, deterministic=False)
    text_again, _, _ = step(params, rest, *args, deterministic=False)
    text_eval, image_eval, rest_eval = step(params, rest, *args, deterministic=True)

    assert not np.allclose(text_a, text_b)  # the dropout stream advanced between steps
    np.testing.assert_array_equal(text_a, text_again)  # and is reproducible from the same state
    assert not np.allclose(text_a, text_eval)  # dropout was on in training mode
    np.testing.assert_allclose(image_a, image_eval, atol=1e-6)  # CLIP's vision tower has no dropout
    leaves = jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), rest, rest_eval))
    assert all(leaves)  # evaluation does not touch the RNG state


def test_every_parameter_gets_a_gradient(checkpoints, pixels):
    model, _ = build_model(tiny_model_config(), seed=0)
    batch = tokens(checkpoints["bert"])
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def loss(params):
        module = nnx.merge(graphdef, params, rest)
        image = module.project_image(module.image_features(jnp.asarray(pixels[:1].repeat(3, 0) * 0.5)))
        text = module.project_text(module.text_features(batch["input_ids"], batch["attention_mask"]))
        image = image / jnp.linalg.norm(image, axis=-1, keepdims=True)
        text = text / jnp.linalg.norm(text, axis=-1, keepdims=True)
        logits = jnp.exp(module.logit_scale[...]) * text @ image.T
        return -jnp.mean(jnp.diag(jax.nn.log_softmax(logits, axis=-1)))

    grads = jax.jit(jax.grad(loss))(params)
    for path, grad in nnx.to_flat_state(grads):
        value = grad.get_value()
        assert np.all(np.isfinite(value)), path
        assert np.any(value != 0), f"no gradient reaches {'/'.join(map(str, path))}"


def test_fused_and_explicit_attention_agree():
    """GPUs take jax.nn.dot_product_attention, CPUs the explicit path: same maths, padding included."""
    from clipit.models.attention import SelfAttention
    from clipit.models.init import Normal

    def attention_for(kernels: str) -> SelfAttention:
        init = Normal(0.3)
        return SelfAttention(
            16,
            4,
            dropout=0.0,
            kernels=kernels,
            qkv_init=init,
            out_init=init,
            dtype=jnp.float32,
            rngs=nnx.Rngs(0),
        )

    attention = attention_for("cpu")
    rng = np.random.default_rng(0)
    q, k, v = (jnp.asarray(rng.standard_normal((2, 5, 4, 4), dtype=np.float32)) for _ in range(3))
    mask = jnp.asarray([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)[:, None, None, :]
    explicit = attention._explicit_attention(q, k, v, mask, deterministic=True)
    fused = jax.nn.dot_product_attention(q, k, v, mask=mask)
    np.testing.assert_allclose(explicit, fused, atol=1e-6)
    # the last block's [CLS]-only queries: one query row against every key, both paths
    one = attention._explicit_attention(q[:, :1], k, v, mask, deterministic=True)
    np.testing.assert_allclose(one, jax.nn.dot_product_attention(q[:, :1], k, v, mask=mask), atol=1e-6)
    np.testing.assert_allclose(one, explicit[:, :1], atol=1e-6)
    x = jnp.asarray(rng.standard_normal((2, 5, 16), dtype=np.float32))
    full = attention(x, mask, deterministic=True)
    np.testing.assert_allclose(attention(x, mask, deterministic=True, queries=1), full[:, :1], atol=1e-6)
    # the same module built for GPUs (fused attention, plain dense layers): the same outputs
    np.testing.assert_allclose(attention_for("gpu")(x, mask, deterministic=True), full, atol=1e-6)
