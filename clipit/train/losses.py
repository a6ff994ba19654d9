"""Contrastive losses over the global batch: symmetric InfoNCE (multi-positive) and sigmoid (SigLIP).

The inputs are the L2-normalised embeddings of the whole global batch. Under `jit` with the batch
sharded over the mesh's 'data' axis, `image @ text.T` makes XLA gather the other devices' features, so
every example sees every other example of the global batch as a negative (CLIP-Italian used only the
127 others on its own device).

Multi-positive: captions that are identical (equal `caption_id`) are positives of each other. A
uniform target over the positives replaces the one-hot target; with all ids distinct it is exactly
the classic CLIP loss.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from clipit.eval.metrics import ranks_from_scores


def logit_scale_value(log_scale: jax.Array, *, max_scale: float, fixed: float | None) -> jax.Array:
    """The multiplier of the cosine similarities: exp(log_scale) clamped at `max_scale`, or `fixed`."""
    if fixed is not None:
        return jnp.asarray(fixed, jnp.float32)
    return jnp.exp(jnp.minimum(log_scale.astype(jnp.float32), jnp.log(max_scale)))


def positives_mask(caption_id: jax.Array | None, batch: int) -> jax.Array:
    """[B, B] float: 1 where example j is a positive of example i (always on the diagonal)."""
    if caption_id is None:
        return jnp.eye(batch, dtype=jnp.float32)
    return (caption_id[:, None] == caption_id[None, :]).astype(jnp.float32)


def infonce(
    image: jax.Array, text: jax.Array, scale: jax.Array, caption_id: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
    """Symmetric InfoNCE; returns (loss, logits) with logits[i, j] = scale * <image_i, text_j>."""
    logits = scale * (image.astype(jnp.float32) @ text.astype(jnp.float32).T)
    targets = positives_mask(caption_id, image.shape[0])
    targets = targets / targets.sum(axis=1, keepdims=True)  # symmetric, so rows and columns alike
    image_to_text = -jnp.sum(targets * jax.nn.log_softmax(logits, axis=1), axis=1).mean()
    text_to_image = -jnp.sum(targets.T * jax.nn.log_softmax(logits.T, axis=1), axis=1).mean()
    return (image_to_text + text_to_image) / 2, logits


def siglip(
    image: jax.Array,
    text: jax.Array,
    scale: jax.Array,
    bias: jax.Array,
    caption_id: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Sigmoid loss (Zhai et al. 2023): every pair is a binary positive/negative decision.

    Summed over the pairs of a row and averaged over rows, as in the paper.
    """
    logits = scale * (image.astype(jnp.float32) @ text.astype(jnp.float32).T) + bias
    signs = 2 * positives_mask(caption_id, image.shape[0]) - 1
    loss = -jnp.sum(jax.nn.log_sigmoid(signs * logits), axis=1).mean()
    return loss, logits


def retrieval_hits(
    logits: jax.Array,
    caption_id: jax.Array | None,
    ks: tuple[int, ...] = (1, 5),
    image_id: jax.Array | None = None,
) -> dict:
    """In-batch recall@k with `clipit eval`'s rule and ranking code (clipit.eval.metrics).

    `logits[i, j]` scores row i's image against row j's caption. Identical captions (equal
    `caption_id`) are one text, and rows showing the same image (equal `image_id`; without it every
    row is its own image) are one image; a text's positives are every image it is paired with in the
    batch. `i2t_r@k` is the share of images with one of their texts in the top k of the batch's texts,
    `t2i_r@k` the share of texts with one of their images in the top k of its images; each text and
    image is counted once, as a query and as a candidate. Ties count against the query, as in eval.
    """
    batch = logits.shape[0]
    rows = jnp.arange(batch)
    same_text = _same(rows if caption_id is None else caption_id)
    same_image = _same(rows if image_id is None else image_id)
    # a text (an image) is represented by its first row in the batch; later rows are copies of it
    first_text = ~jnp.any(same_text & (rows[None, :] < rows[:, None]), axis=1)
    first_image = ~jnp.any(same_image & (rows[None, :] < rows[:, None]), axis=1)
    # image of row i pairs with text of row j when some row r shows that image with that text
    paired = (same_image.astype(jnp.float32) @ same_text.astype(jnp.float32)) > 0
    i2t = ranks_from_scores(logits, paired & first_text[None, :], first_text)
    t2i = ranks_from_scores(logits.T, paired.T & first_image[None, :], first_image)
    out = {}
    for k in ks:
        out[f"i2t_r@{k}"] = jnp.sum((i2t <= k) & first_image) / jnp.sum(first_image)
        out[f"t2i_r@{k}"] = jnp.sum((t2i <= k) & first_text) / jnp.sum(first_text)
    return out


def _same(ids: jax.Array) -> jax.Array:
    return ids[:, None] == ids[None, :]
