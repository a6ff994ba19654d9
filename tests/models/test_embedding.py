"""BERT's embedding lookups: same rows as a gather, gradients summed exactly, no bf16 or small-table scatter."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from clipit.models.build import create_model
from clipit.models.embedding import MERGE_GROUP, _merge_repeats, lookup
from clipit.models.sizes import CLIP_LOGIT_SCALE_INIT, TextSizes, VisionSizes


def table(rows: int, width: int = 8) -> jax.Array:
    return jax.random.normal(jax.random.key(rows), (rows, width))


@pytest.mark.parametrize("kernels", ["cpu", "gpu", "tpu"])  # every kernel setting, run here
@pytest.mark.parametrize("rows", [2, 300])  # the select path (token types) and the gather path
def test_lookup_indexes_as_nnx_embed_does(rows, kernels):
    weights = table(rows)
    ids = jnp.array([[0, 1, rows - 1], [rows - 1, 0, 0]])
    np.testing.assert_array_equal(lookup(weights, ids, kernels), weights[ids])
    assert lookup(weights, ids, kernels).dtype == jnp.float32
    edges = jnp.array([-1, rows, -rows - 1])
    reference = nnx.Embed(rows, 8, rngs=nnx.Rngs(0))
    reference.embedding = nnx.Param(weights)
    np.testing.assert_array_equal(lookup(weights, edges, kernels), reference(edges))  # last row, NaN, NaN
    assert np.isnan(lookup(weights, edges, kernels)[1:]).all()
    grad = jax.grad(lambda w: jnp.nansum(lookup(w, edges, kernels)))(weights)
    np.testing.assert_array_equal(grad, jnp.zeros_like(weights).at[-1].set(1.0))  # only the row of -1


@pytest.mark.parametrize("kernels", ["cpu", "gpu", "tpu"])  # "gpu": repeats merged; "tpu": not
@pytest.mark.parametrize("rows", [2, 300])
def test_gradient_of_a_row_used_thousands_of_times_is_the_exact_sum(rows, kernels):
    """20,000 positions add into row 0 (BERT's token type 0, or [CLS]), with bf16 gradients as a
    bf16 model hands back: the table's gradient is their float64 sum to float32 precision (a bf16
    accumulator, what autodiff of nnx.Embed(dtype=bfloat16) scatters into, is off by percents)."""
    rng = np.random.default_rng(0)
    ids = np.zeros(20_000, np.int32)
    ids[::7] = rows - 1
    cotangent = rng.standard_normal((ids.size, 8)).astype(np.float32)
    cotangent[::5] = 0.0  # padding positions: exactly zero rows, left out of the scatter
    cotangent = jnp.asarray(cotangent, jnp.bfloat16)

    _, pullback = jax.vjp(lambda w: lookup(w, ids, kernels).astype(jnp.bfloat16), table(rows))
    (grad,) = pullback(cotangent)

    expected = np.zeros((rows, 8))
    np.add.at(expected, ids, np.asarray(cotangent, np.float64))
    assert grad.dtype == jnp.float32
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-4)


def test_repeated_ids_are_merged_to_one_update_per_group_before_the_scatter():
    """[CLS] at the start of all 256 captions of a batch reaches the scatter as one update per group of
    MERGE_GROUP captions (16), each the exact sum of its rows; every other id's sum is unchanged."""
    rng = np.random.default_rng(1)
    ids = rng.integers(5, 1000, (256, 12)).astype(np.int32)
    ids[:, 0] = 2  # [CLS]
    rows = rng.standard_normal((256, 12, 4)).astype(np.float32)
    targets, sums = _merge_repeats(jnp.asarray(ids), jnp.asarray(rows))
    targets, sums = np.asarray(targets), np.asarray(sums)
    live = np.any(sums != 0, axis=1)
    assert (targets[live] == 2).sum() == 256 // MERGE_GROUP
    assert live.sum() < ids.size
    merged = np.zeros((1000, 4))
    np.add.at(merged, targets[live], sums[live])
    expected = np.zeros((1000, 4))
    np.add.at(expected, ids.reshape(-1), rows.reshape(-1, 4).astype(np.float64))
    np.testing.assert_allclose(merged, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernels", ["cpu", "gpu", "tpu"])  # the step each device compiles, lowered here
def test_bf16_training_step_scatters_only_into_the_float32_word_table(kernels):
    """The lowered bf16 step of a dual encoder as a GPU compiles it: one scatter, the word embeddings'
    gradient, in float32; none into the 2-row token-type table (the whole batch into one row) and none
    in bf16: on a GPU those are contended compare-and-swap loops (see clipit/models/embedding.py)."""
    vision = VisionSizes(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        patch_size=8,
        image_size=16,
    )
    text = TextSizes(
        vocab_size=300, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    model = create_model(vision, text, 16, CLIP_LOGIT_SCALE_INIT, jnp.bfloat16, seed=0, kernels=kernels)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def loss(params, pixels, ids, mask):
        module = nnx.merge(graphdef, params, rest)
        return (module.encode_image(pixels) * module.encode_text(ids, mask)).sum()

    pixels = jnp.zeros((4, 16, 16, 3))
    ids = jnp.ones((4, 12), jnp.int32)
    hlo = jax.jit(jax.grad(loss)).lower(params, pixels, ids, jnp.ones_like(ids)).as_text()
    scatters = re.findall(r'"stablehlo\.scatter".*?\}\) : \((tensor<[^>]*>)', hlo, flags=re.DOTALL)
    if kernels != "cpu":
        assert scatters == ["tensor<300x32xf32>"]
    else:  # XLA:CPU's scatters are plain loops: autodiff's word and token-type scatters, in float32
        assert sorted(scatters) == ["tensor<2x32xf32>", "tensor<300x32xf32>"]


def test_gpu_backward_under_data_parallelism_only_all_reduces_the_table_gradient():
    """With the batch sharded over 8 devices, the GPU path's sorts stay on their devices: the compiled
    backward's only collective is the all-reduce of the table's gradient (a sort over the whole batch
    would gather every gradient row across devices)."""
    assert jax.device_count() == 8, "run with XLA_FLAGS=--xla_force_host_platform_device_count=8"
    mesh = Mesh(np.array(jax.devices()), ("data",))
    weights = jax.device_put(table(1000, 64), NamedSharding(mesh, P()))
    ids = np.random.default_rng(0).integers(0, 1000, (256, 24)).astype(np.int32)
    ids = jax.device_put(ids, NamedSharding(mesh, P("data")))
    upstream = jax.device_put(jnp.ones((256, 24, 64)), NamedSharding(mesh, P("data")))

    backward = jax.jit(lambda w, ids, g: jax.vjp(lambda w: lookup(w, ids, "gpu"), w)[1](g)[0])
    hlo = backward.lower(weights, ids, upstream).compile().as_text()

    collectives = re.findall(
        r"= (\S+) (all-gather|all-reduce|all-to-all|collective-permute|reduce-scatter)(?:-start)?\(", hlo
    )
    assert collectives == [("f32[1000,64]{1,0}", "all-reduce")]
