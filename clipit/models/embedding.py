"""BERT's embedding lookups, with backward passes that sum in float32 and avoid contended GPU atomics.

Autodiff of `nnx.Embed(dtype=bfloat16)` casts the whole float32 table to bf16 every step, gathers from
the copy, and in the backward pass scatter-adds every token's gradient row into a bf16 zero table. On a
GPU that scatter is a loop of atomic adds, which XLA emits for bf16 as compare-and-swap retry loops
(openxla/xla#26371; jaxlib 0.10.2-0.11.0 does the same for float32, jax-ml/jax#38806) that collapse
when many rows hit the same address. BERT's token types are the extreme case: every token of the
batch adds into row 0 of a 2-row table (24,576 rows into one at batch 256 x 96 tokens). The sums also lose precision: a bf16 accumulator stops absorbing small
updates once it is large. Here instead, rows are gathered from the float32 tables, so every gradient
sum is float32, and on GPUs/TPUs:

- big tables (words): the backward pass sorts the gradient rows by id, sums repeats within chunks of
  32 (so [CLS], in every caption, is 8 atomic adds at batch 256, not 256), and scatter-adds float32
  rows into a float32 table, leaving out rows whose gradient is exactly zero (padding positions: no
  query attends to them and the pooler reads [CLS] only), so the [PAD] row is not a thousand-way hot
  spot either.
- small tables (token types): one select per row; the backward pass is a masked sum over the tokens
  per row, a reduction with no atomics at all.

On CPU, where XLA's scatter is a plain loop with no atomics, the plain float32 gather's autodiff is
both exact and the fastest (the sort and the selects cost 10-30 ms a step at BERT-base sizes there).
Positions 0..T-1 are a slice of their table (clipit/models/bert.py): its backward pass is a pad.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

SMALL_TABLE_ROWS = 16  # up to here a select per row costs less than a scatter (BERT's types: 2)
MERGE_CHUNK = 32  # rows per chunk whose repeated ids are summed before the scatter


def lookup(weights: jax.Array, ids: jax.Array) -> jax.Array:
    """Rows of the float32 table `weights` [V, D] for `ids` ([...] -> [..., D]), indexed as
    `nnx.Embed` does (`jnp.take`): -1 is the last row, ids past either end give NaN rows."""
    if jax.default_backend() == "cpu":  # XLA:CPU's scatter is a plain loop: autodiff's is exact and fastest
        return jnp.take(weights, ids, axis=0)
    if weights.shape[0] <= SMALL_TABLE_ROWS:
        return _select_rows(weights, ids)
    return _gather_rows(weights, ids)


def _select_rows(weights: jax.Array, ids: jax.Array) -> jax.Array:
    """One select per table row; the backward pass of each is a masked sum over the tokens, with no
    scatter (and, unlike a one-hot matmul, no K=2 dot that XLA:CPU runs slowly)."""
    count = weights.shape[0]
    ids = jnp.where(ids < 0, ids + count, ids)[..., None]
    rows = jnp.full((*ids.shape[:-1], weights.shape[1]), jnp.nan, weights.dtype)  # stays NaN out of range
    for row in range(count):
        rows = jnp.where(ids == row, weights[row], rows)
    return rows


@jax.custom_vjp
def _gather_rows(weights: jax.Array, ids: jax.Array) -> jax.Array:
    return jnp.take(weights, ids, axis=0)


def _gather_rows_forward(weights, ids):
    return jnp.take(weights, ids, axis=0), (weights, ids)


def _gather_rows_backward(residuals, grad):
    weights, ids = residuals
    vocab, width = weights.shape
    flat_ids = ids.reshape(-1)
    targets = jnp.where(flat_ids < 0, flat_ids + vocab, flat_ids)  # -1: the last row, as jnp.take reads it
    rows = grad.reshape(-1, width).astype(jnp.float32)
    targets, rows = _merge_repeats(targets, rows)
    # A zero row adds nothing; sending it out of range makes the scatter skip it (XLA drops
    # out-of-bounds updates before the atomic), so padding does not pile onto the [PAD] row.
    targets = jnp.where(jnp.any(rows != 0, axis=1), targets, vocab)
    grad_weights = jnp.zeros((vocab, width), jnp.float32).at[targets].add(rows, mode="drop")
    grad_ids = jnp.zeros(ids.shape, jax.dtypes.float0)  # integer input: no gradient
    return grad_weights.astype(weights.dtype), grad_ids


def _merge_repeats(ids: jax.Array, rows: jax.Array, chunk: int = MERGE_CHUNK) -> tuple[jax.Array, jax.Array]:
    """(ids, rows) sorted by id, with the rows of each run of one id within each `chunk` consecutive
    rows summed (float32) into the run's first row and the others zeroed: the same scatter-add result
    with at most one update per id per chunk. [CLS] and [SEP], in every caption, then add 256 / chunk
    rows into their table row instead of 256 atomics on one address (a compare-and-swap loop in
    jaxlib 0.10.2-0.11.0, jax-ml/jax#38806). The sums are a [chunk, chunk] 0/1 matrix product per chunk."""
    count, width = rows.shape
    order = jnp.argsort(ids)
    ids, rows = ids[order], rows[order].astype(jnp.float32)
    pad = -count % chunk
    ids = jnp.pad(ids, (0, pad), constant_values=-1).reshape(-1, chunk)
    rows = jnp.pad(rows, ((0, pad), (0, 0))).reshape(-1, chunk, width)
    starts = jnp.concatenate([jnp.ones_like(ids[:, :1], bool), ids[:, 1:] != ids[:, :-1]], axis=1)
    merge = (starts[:, :, None] & (ids[:, :, None] == ids[:, None, :])).astype(jnp.float32)
    sums = jnp.einsum("cij,cjd->cid", merge, rows, precision=jax.lax.Precision.HIGHEST)
    return ids.reshape(-1), sums.reshape(-1, width)  # padding rows: id -1, zero sums (dropped)


_gather_rows.defvjp(_gather_rows_forward, _gather_rows_backward)
