"""The kernel setting: chosen once from the devices, carried by every module that has a fast path."""

from __future__ import annotations

from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from clipit.models import build_model
from clipit.models.embedding import lookup
from clipit.models.kernels import check_kernels, kernels_for
from tests.support import tiny_hf
from tests.support.tiny_hf import model_config as tiny_model_config


def devices(*platforms: str) -> list:
    """Stand-ins for devices of other platforms: kernels_for reads only `.platform`."""
    return [SimpleNamespace(platform=p) for p in platforms]


def test_kernels_follow_the_platform_of_the_devices():
    assert kernels_for() == kernels_for(jax.devices()) == "cpu"
    assert kernels_for(devices("gpu", "gpu")) == "gpu"
    assert kernels_for(devices("rocm")) == "gpu"
    assert kernels_for(devices("tpu")) == "tpu"
    with pytest.raises(ValueError, match="one platform"):
        kernels_for(devices("cpu", "gpu"))
    with pytest.raises(ValueError, match="kernels must be one of"):
        check_kernels("cuda")


@pytest.mark.parametrize("kernels", [None, "gpu"])
def test_every_module_of_a_built_model_carries_the_one_setting(kernels):
    model, _ = build_model(tiny_model_config(), kernels=kernels)
    expected = kernels or "cpu"  # default: the devices jax runs on here
    settings = {
        type(node).__name__: node.kernels
        for _, node in nnx.iter_graph(model)
        if isinstance(node, nnx.Module) and hasattr(node, "kernels")
    }
    assert set(settings) >= {"DualEncoder", "Linear", "LayerNorm", "SelfAttention", "BertEmbeddings"}
    assert set(settings.values()) == {expected}


def test_gpu_and_cpu_kernels_compute_the_same_embeddings():
    config = tiny_model_config()
    cpu, _ = build_model(config, kernels="cpu")
    gpu, _ = build_model(config, kernels="gpu")
    pixels = (
        np.random.default_rng(0)
        .standard_normal((2, tiny_hf.IMAGE_SIZE, tiny_hf.IMAGE_SIZE, 3))
        .astype(np.float32)
    )
    ids = jnp.asarray([[2, 7, 9, 3, 0], [2, 5, 3, 0, 0]], jnp.int32)
    mask = (ids != 0).astype(jnp.int32)

    @jax.jit
    def embed(params_cpu, params_gpu):
        a, b = nnx.merge(*params_cpu), nnx.merge(*params_gpu)
        return (a.encode_image(pixels), a.encode_text(ids, mask)), (
            b.encode_image(pixels),
            b.encode_text(ids, mask),
        )

    ours, theirs = embed(nnx.split(cpu), nnx.split(gpu))
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, atol=2e-6)
    table = jnp.arange(12.0).reshape(4, 3)
    assert (lookup(table, ids[:, :2] % 4, "tpu") == lookup(table, ids[:, :2] % 4, "cpu")).all()
