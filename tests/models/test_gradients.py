"""Gradients of the CLIP loss against transformers' PyTorch model, parameter by parameter.

The forward parity tests do not cover the backward pass, and on CPU the dense layers, LayerNorms and
activations take custom VJPs (clipit/models/layers.py): every parameter's gradient must equal what
PyTorch's autograd computes for `VisionTextDualEncoderModel(..., return_loss=True)` on the same
weights and batch. The GPU/TPU code paths (plain dense layers, `jax.nn.dot_product_attention`, the
embedding lookups of clipit/models/embedding.py) are checked the same way: a model built with
kernels="gpu" runs them here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from transformers import VisionTextDualEncoderModel

from clipit.models import load_dual_encoder
from clipit.models.hf_io import canonical_keys
from clipit.models.hf_keys import hf_key, to_hf
from clipit.models.init import Normal
from clipit.models.layers import LayerNorm, Linear, exact_gelu, matmul, quick_gelu
from tests.support import tiny_hf
from tests.support.tower_io import to_torch_image, tokens


def clip_loss(model, pixels, ids, mask):
    """transformers' clip_loss: mean of the text->image and image->text cross-entropies."""
    image = model.encode_image(pixels)
    text = model.encode_text(ids, mask)
    logits = jnp.exp(model.logit_scale[...]) * text @ image.T
    diagonal = jnp.arange(logits.shape[0])
    per_text = -jax.nn.log_softmax(logits, axis=-1)[diagonal, diagonal]
    per_image = -jax.nn.log_softmax(logits.T, axis=-1)[diagonal, diagonal]
    return (per_text.mean() + per_image.mean()) / 2


@pytest.mark.parametrize("kernels", ["cpu", "gpu"])  # "gpu": the GPU/TPU code paths, run here
def test_clip_loss_gradients_match_pytorch(checkpoints, kernels):
    model, folder = load_dual_encoder(checkpoints["dual"], kernels=kernels)
    assert model.kernels == kernels
    batch = tokens(folder)
    size = tiny_hf.IMAGE_SIZE
    pixels = np.random.default_rng(1).standard_normal((3, size, size, 3)).astype(np.float32)

    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def loss(params):
        return clip_loss(
            nnx.merge(graphdef, params, rest), pixels, batch["input_ids"], batch["attention_mask"]
        )

    value, grads = jax.jit(jax.value_and_grad(loss))(params)

    reference = VisionTextDualEncoderModel.from_pretrained(folder).eval()  # eval: no dropout
    out = reference(
        input_ids=torch.from_numpy(batch["input_ids"]).long(),
        attention_mask=torch.from_numpy(batch["attention_mask"]).long(),
        pixel_values=to_torch_image(pixels),
        return_loss=True,
    )
    out.loss.backward()
    computed = {name: p.grad.numpy() for name, p in reference.named_parameters() if p.grad is not None}
    expected, _ = canonical_keys(computed, "vision-text-dual-encoder", "pytorch gradients")

    assert abs(float(value) - out.loss.item()) <= 1e-5
    compared = set()
    for path, grad in nnx.to_flat_state(grads):
        name, transform = hf_key("/".join(map(str, path)))
        ours = to_hf(np.asarray(grad.get_value()), transform)
        theirs = expected[name]
        scale = max(float(np.max(np.abs(theirs))), 1e-3)
        assert np.max(np.abs(ours - theirs)) <= 1e-4 * scale, name
        compared.add(name)
    # every parameter PyTorch computes a gradient for was compared, and no other
    assert compared == set(expected)


def test_cpu_matmul_gradient_equals_plain_matmul_gradient():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((7, 5), dtype=np.float32))
    w = jnp.asarray(rng.standard_normal((5, 3), dtype=np.float32))
    cotangent = jnp.asarray(rng.standard_normal((7, 3), dtype=np.float32))

    def vjp(fn):
        return jax.vjp(fn, x, w)[1](cotangent)

    ours = jax.jit(lambda: vjp(lambda x, w: matmul(x, w, "cpu")))()
    plain = jax.jit(lambda: vjp(jnp.matmul))()
    for a, b in zip(ours, plain, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)

    def linear(kernels: str, dtype=None) -> Linear:
        return Linear(5, 3, kernels=kernels, kernel_init=Normal(0.5), dtype=dtype, rngs=nnx.Rngs(0))

    layer = linear("cpu")
    np.testing.assert_allclose(layer(x), nnx.Linear.__call__(layer, x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(layer(x), linear("gpu")(x), rtol=1e-6, atol=1e-6)
    assert linear("cpu", jnp.bfloat16)(x).dtype == jnp.bfloat16
    batched = jnp.stack([x, 2 * x])  # [2, 7, 5]: any leading axes, flattened for the GEMM
    np.testing.assert_allclose(layer(batched), nnx.Linear.__call__(layer, batched), rtol=1e-6, atol=1e-6)


def test_cpu_layer_norm_and_activation_match_autodiff_of_plain_code():
    """The CPU custom VJPs against jax's autodiff of flax's own modules, values and every gradient."""
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((2, 7, 12), dtype=np.float32) * 3 + 1)
    cotangent = jnp.asarray(rng.standard_normal((2, 7, 12), dtype=np.float32))
    norm = LayerNorm(12, epsilon=1e-5, kernels="cpu", rngs=nnx.Rngs(0))
    norm.scale[...] = jnp.asarray(rng.standard_normal(12, dtype=np.float32))
    norm.bias[...] = jnp.asarray(rng.standard_normal(12, dtype=np.float32))

    def check(ours, plain, module, x, cotangent):
        graphdef, params = nnx.split(module)

        def run(fn):
            def loss(params, x):
                return jnp.sum(fn(nnx.merge(graphdef, params), x) * cotangent)

            return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, x)

        (value_a, (params_a, x_a)), (value_b, (params_b, x_b)) = run(ours), run(plain)
        np.testing.assert_allclose(value_a, value_b, rtol=1e-5)
        np.testing.assert_allclose(x_a, x_b, rtol=1e-4, atol=1e-5)
        for a, b in zip(jax.tree.leaves(params_a), jax.tree.leaves(params_b), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)

    check(lambda module, x: module(x), nnx.LayerNorm.__call__, norm, x, cotangent)
    flat, flat_cotangent = x.reshape(14, 12), jnp.asarray(rng.standard_normal((14, 9), dtype=np.float32))
    for name, activation in (("quick_gelu", quick_gelu), ("gelu", exact_gelu)):
        linear = Linear(12, 9, kernels="cpu", kernel_init=Normal(0.3), activation=name, rngs=nnx.Rngs(1))
        linear.bias[...] = jnp.asarray(rng.standard_normal(9, dtype=np.float32))
        check(
            lambda module, x: module(x),
            lambda module, x, act=activation: act(nnx.Linear.__call__(module, x)),
            linear,
            flat,
            flat_cotangent,
        )
