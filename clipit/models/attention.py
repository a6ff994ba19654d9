"""Multi-head self-attention shared by both towers (CLIP's and BERT's attention are the same maths).

Inference and dropout-free training go through `jax.nn.dot_product_attention`, which XLA lowers to a
fused kernel where the backend has one (cuDNN flash attention on GPU in bf16). Attention-probability
dropout (BERT trains with 0.1) needs the probabilities themselves, so that one case is written out.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


class SelfAttention(nnx.Module):
    def __init__(self, hidden_size: int, num_heads: int, *, dropout: float, dtype, rngs: nnx.Rngs) -> None:
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.dropout_rate = dropout

        def linear() -> nnx.Linear:
            return nnx.Linear(hidden_size, hidden_size, dtype=dtype, rngs=rngs)

        self.query = linear()
        self.key = linear()
        self.value = linear()
        self.out = linear()
        self.dropout = nnx.Dropout(dropout, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array | None, *, deterministic: bool) -> jax.Array:
        """x: [B, T, D]; mask: bool, broadcastable to [B, heads, T, T] (True = attend), or None."""
        batch, length, _ = x.shape
        shape = (batch, length, self.num_heads, self.head_dim)
        q = self.query(x).reshape(shape)
        k = self.key(x).reshape(shape)
        v = self.value(x).reshape(shape)
        if deterministic or self.dropout_rate == 0.0:
            context = jax.nn.dot_product_attention(q, k, v, mask=mask)
        else:
            context = self._attention_with_dropout(q, k, v, mask)
        return self.out(context.reshape(batch, length, -1))

    def _attention_with_dropout(self, q, k, v, mask):
        logits = jnp.einsum("bthd,bshd->bhts", q, k) / jnp.sqrt(self.head_dim).astype(q.dtype)
        if mask is not None:
            logits = jnp.where(mask, logits, jnp.finfo(logits.dtype).min)
        probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(q.dtype)
        probs = self.dropout(probs, deterministic=False)
        return jnp.einsum("bhts,bshd->bthd", probs, v)
