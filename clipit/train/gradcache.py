"""Contrastive micro-batching (GradCache, Gao et al. 2021): a large global batch in bounded memory.

A contrastive loss couples every example to every other one, so the batch cannot simply be split into
micro-batches whose gradients are summed. GradCache splits the *encoder* instead, in three passes:

1. encode every micro-batch without gradients and keep only the [B, D] embeddings;
2. compute the loss over the whole global batch (all negatives kept) and its gradient with respect to
   every embedding, plus the direct gradients of the logit scale and the SigLIP bias;
3. re-encode each micro-batch with gradients and pull its slice of the embedding gradient back through
   the encoder (`jax.vjp`), summing the parameter gradients.

By the chain rule the result equals `jax.value_and_grad` of the full-batch loss, at the price of a
second forward pass; peak memory holds the activations of one micro-batch instead of the whole batch.
Both passes over micro-batches are `lax.scan`s, so the compiled step has one copy of the encoder.

Mesh: a micro-batch takes `micro_batch_size / devices` rows from every device's shard, so each pass
runs on all devices without moving rows between them, and the embeddings return to the batch's order.

Dropout: micro-batch i draws from the RNG keys folded with i, the same in passes 1 and 3, so the
embeddings whose gradient pass 2 computes are exactly the ones pass 3 differentiates. The masks differ
from the single mask the full-batch step draws over the whole batch; with dropout off (or frozen,
deterministic towers) the two steps give the same update. The RNG counters advance as in the full-batch
step and the keys are restored, so a resumed run continues identically.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from clipit.config.train import TrainConfig
from clipit.errors import ConfigError
from clipit.train.mesh import batch_axes

Tree = Any
# encode(params, rest, micro_batch) -> (embeddings, new_rest); head(params, embeddings, batch) -> (loss, aux)
Encode = Callable[[Tree, dict, dict], tuple[Tree, dict]]
Head = Callable[[Tree, Tree, dict], tuple[jax.Array, Any]]


def check_micro_batch_size(train: TrainConfig, mesh: Mesh) -> None:
    """Every micro-batch must spread evenly over the devices (the config already checked the batch)."""
    micro, devices = train.micro_batch_size, mesh.devices.size
    if micro is not None and micro % devices:
        raise ConfigError(
            f"train.micro_batch_size {micro} is not divisible by the {devices} devices of the mesh",
            f"use a multiple of {devices} that divides train.batch_size {train.batch_size}",
        )


def value_and_grad(
    encode: Encode,
    head: Head,
    params: Tree,
    rest: dict,
    batch: dict,
    *,
    micro_batch_size: int,
    mesh: Mesh,
    key_names: Collection[str],
) -> tuple[tuple[jax.Array, tuple[Any, dict]], Tree]:
    """`((loss, (aux, new_rest)), grads)` as `jax.value_and_grad(has_aux=True)` of the full batch.

    `rest` is the flat non-parameter state (RNG keys as raw data under `key_names`, counters);
    `batch` holds [B, ...] arrays sharded over every axis of the mesh (data, and fsdp when present).
    """
    size = next(iter(batch.values())).shape[0]
    count = size // micro_batch_size
    shards = mesh.devices.size
    split = _splitter(count, shards, NamedSharding(mesh, PartitionSpec(None, batch_axes(mesh))))
    micro = {k: split(v) for k, v in batch.items()}
    index = jnp.arange(count)

    def rest_for(i):
        return {k: _fold(v, i) if k in key_names else v for k, v in rest.items()}

    def forward(_, xs):
        i, micro_batch = xs
        embeddings, _ = encode(params, rest_for(i), micro_batch)
        return None, embeddings

    _, embeddings = jax.lax.scan(forward, None, (index, micro))
    embeddings = jax.lax.stop_gradient(jax.tree.map(lambda e: _unsplit(e, count, shards), embeddings))

    (loss, aux), (direct, cotangent) = jax.value_and_grad(head, argnums=(0, 1), has_aux=True)(
        params, embeddings, batch
    )

    def backward(grads, xs):
        i, micro_batch, micro_cotangent = xs
        _, pullback, new_rest = jax.vjp(lambda p: encode(p, rest_for(i), micro_batch), params, has_aux=True)
        (micro_grads,) = pullback(micro_cotangent)
        return jax.tree.map(jnp.add, grads, micro_grads), new_rest

    grads, new_rests = jax.lax.scan(backward, direct, (index, micro, jax.tree.map(split, cotangent)))
    # counters advanced by one forward pass, as in the full-batch step; the keys themselves never change
    new_rest = {k: rest[k] if k in key_names else v[-1] for k, v in new_rests.items()}
    return (loss, (aux, new_rest)), grads


def _fold(key_data: jax.Array, i: jax.Array) -> jax.Array:
    return jax.random.key_data(jax.random.fold_in(jax.random.wrap_key_data(key_data), i))


def _splitter(count: int, shards: int, sharding: NamedSharding) -> Callable[[jax.Array], jax.Array]:
    """[B, ...] -> [count, B / count, ...]; micro-batch i holds rows i*m/s..(i+1)*m/s-1 of every shard."""

    def split(x: jax.Array) -> jax.Array:
        rows = x.shape[0] // shards
        x = x.reshape(shards, count, rows // count, *x.shape[1:]).swapaxes(0, 1)
        x = x.reshape(count, x.shape[1] * x.shape[2], *x.shape[3:])
        return jax.lax.with_sharding_constraint(x, sharding)

    return split


def _unsplit(x: jax.Array, count: int, shards: int) -> jax.Array:
    """The inverse of the split: [count, m, ...] -> [B, ...] in the batch's order."""
    x = x.reshape(count, shards, x.shape[1] // shards, *x.shape[2:]).swapaxes(0, 1)
    return x.reshape(-1, *x.shape[3:])
