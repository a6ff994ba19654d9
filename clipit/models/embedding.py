"""BERT's embedding lookups, with backward passes that sum in float32 and avoid contended GPU atomics.

Autodiff of `nnx.Embed(dtype=bfloat16)` casts the whole float32 table to bf16 every step, gathers from
the copy, and in the backward pass scatter-adds every token's gradient row into a bf16 zero table. On a
GPU that scatter is a loop of atomic adds, which XLA emits for bf16 as compare-and-swap retry loops
(openxla/xla#26371; jaxlib 0.10.2-0.11.0 does the same for float32, jax-ml/jax#38806) that collapse
when many rows hit the same address. BERT's token types are the extreme case: every token of the
batch adds into row 0 of a 2-row table (24,576 rows into one at batch 256 x 96 tokens). The sums also
lose precision: a bf16 accumulator stops absorbing small updates once it is large.

Here rows are gathered from the float32 tables, so every gradient sum is float32, and with kernels
"gpu"/"tpu" (clipit.models.kernels):
- big tables (words): the backward pass leaves out rows whose gradient is exactly zero (padding
  positions: no query attends to them and the pooler reads [CLS] only), so the [PAD] row is not a
  thousand-way hot spot; with "gpu" it also sorts the rows of each 16 examples by id and sums repeats
  within chunks of 32 first, so [CLS], in every caption, is 16 atomic adds at batch 256, not 256;
- small tables (token types): one select per row; the backward pass is a masked sum over the tokens
  per row, a reduction with no atomics at all.
With kernels="cpu", where XLA's scatter is a plain loop with no atomics, autodiff of the float32
gather is exact and the fastest (at BERT-base sizes the sort-and-merge would cost about 100 ms a step
there, the token-type selects 30 ms more than their scatter).
Positions 0..T-1 are a slice of their table (clipit/models/bert.py): its backward pass is a pad.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from clipit.models.kernels import check_kernels

SMALL_TABLE_ROWS = 16  # up to here a select per row costs less than a scatter (BERT's types: 2)
MERGE_CHUNK = 32  # sorted rows per chunk whose repeated ids are summed before the scatter
MERGE_GROUP = 16  # examples sorted together (a group must fit on one device under data parallelism)


def lookup(weights: jax.Array, ids: jax.Array, kernels: str) -> jax.Array:
    """Rows of the float32 table `weights` [V, D] for `ids` ([...] -> [..., D]), indexed as
    `nnx.Embed` does (`jnp.take`): -1 is the last row, ids past either end give NaN rows. `kernels`:
    the setting of clipit.models.kernels."""
    if check_kernels(kernels) == "cpu":  # XLA:CPU's scatter is a plain loop: autodiff's is exact and fastest
        return jnp.take(weights, ids, axis=0)
    if weights.shape[0] <= SMALL_TABLE_ROWS:
        return _select_rows(weights, ids)
    return _gather_rows(weights, ids, kernels == "gpu")  # scatters are atomics on GPUs (TPUs' are not)


def _select_rows(weights: jax.Array, ids: jax.Array) -> jax.Array:
    """One select per table row; the backward pass of each is a masked sum over the tokens, with no
    scatter, and exact in float32 (a one-hot matmul would be rounded to TF32 on GPUs by default)."""
    count = weights.shape[0]
    ids = jnp.where(ids < 0, ids + count, ids)[..., None]
    rows = jnp.full((*ids.shape[:-1], weights.shape[1]), jnp.nan, weights.dtype)  # stays NaN out of range
    for row in range(count):
        rows = jnp.where(ids == row, weights[row], rows)
    return rows


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _gather_rows(weights: jax.Array, ids: jax.Array, merge: bool) -> jax.Array:
    return jnp.take(weights, ids, axis=0)


def _gather_rows_forward(weights, ids, merge):
    return jnp.take(weights, ids, axis=0), (weights, ids)


def _gather_rows_backward(merge, residuals, grad):
    weights, ids = residuals
    vocab, width = weights.shape
    targets = jnp.where(ids < 0, ids + vocab, ids)  # -1: the last row, as jnp.take reads it
    targets = jnp.where((targets >= 0) & (targets < vocab), targets, vocab)  # NaN rows: no gradient
    rows = grad.astype(jnp.float32)
    if merge:
        targets, rows = _merge_repeats(targets, rows)
    targets, rows = targets.reshape(-1), rows.reshape(-1, width)
    # A zero row adds nothing; sending it out of range makes the scatter skip it (XLA drops
    # out-of-bounds updates before the atomic), so padding does not pile onto the [PAD] row.
    targets = jnp.where(jnp.any(rows != 0, axis=1), targets, vocab)
    grad_weights = jnp.zeros((vocab, width), jnp.float32).at[targets].add(rows, mode="drop")
    grad_ids = jnp.zeros(ids.shape, jax.dtypes.float0)  # integer input: no gradient
    return grad_weights.astype(weights.dtype), grad_ids


def _merge_repeats(ids: jax.Array, rows: jax.Array) -> tuple[jax.Array, jax.Array]:
    """ids [B, ...] and their gradient rows [B, ..., D] -> (ids [M], rows [M, D]) that scatter-add to the
    same table, with at most one row per id per `MERGE_CHUNK` rows: per group of `MERGE_GROUP` examples,
    the rows are sorted by id and each run of one id within a chunk is summed (float32, a [chunk, chunk]
    0/1 matrix product) into the run's first row, the others zeroed. [CLS], in every caption, then adds
    one row per group (16 at batch 256) instead of 256 atomics on one address (compare-and-swap loops in
    jaxlib 0.10.2-0.11.0, jax-ml/jax#38806). Groups run along the batch axis, the one data parallelism
    shards, so each group's sort stays on its device (a sort over the whole batch would gather it)."""
    batch = ids.shape[0] if ids.ndim > 1 else 1
    ids = ids.reshape(batch // math.gcd(batch, MERGE_GROUP), -1)  # [groups, tokens per group]
    rows = rows.reshape(*ids.shape, -1)
    order = jnp.argsort(ids, axis=1)
    ids = jnp.take_along_axis(ids, order, axis=1)
    rows = jnp.take_along_axis(rows, order[..., None], axis=1)
    pad = -ids.shape[1] % MERGE_CHUNK
    ids = jnp.pad(ids, ((0, 0), (0, pad)), constant_values=-1).reshape(-1, MERGE_CHUNK)
    rows = jnp.pad(rows, ((0, 0), (0, pad), (0, 0))).reshape(*ids.shape, -1)
    starts = jnp.concatenate([jnp.ones_like(ids[:, :1], bool), ids[:, 1:] != ids[:, :-1]], axis=1)
    merge = (starts[:, :, None] & (ids[:, :, None] == ids[:, None, :])).astype(jnp.float32)
    sums = jnp.einsum("cij,cjd->cid", merge, rows, precision=jax.lax.Precision.HIGHEST)
    return ids.reshape(-1), sums.reshape(-1, sums.shape[-1])  # padding rows: id -1, zero sums (dropped)


_gather_rows.defvjp(_gather_rows_forward, _gather_rows_backward)
