"""Multi-head self-attention shared by both towers (CLIP's and BERT's attention are the same maths).

With kernels "gpu"/"tpu", inference and dropout-free training go through
`jax.nn.dot_product_attention` (fused kernels where the backend has them). With kernels="cpu", and
whenever attention-probability dropout is on (BERT trains with 0.1, which needs the probabilities
themselves), the maths is written out with heads-major batched matmuls, measured faster on CPU
(benchmarks/towers.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from clipit.models.init import Normal
from clipit.models.kernels import check_kernels
from clipit.models.layers import Linear, fused_linear


class SelfAttention(nnx.Module):
    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        *,
        dropout: float,
        kernels: str,
        qkv_init: Normal,
        out_init: Normal,
        dtype,
        rngs: nnx.Rngs,
    ) -> None:
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.dropout_rate = dropout
        self.kernels = check_kernels(kernels)

        def linear(init: Normal) -> Linear:
            return Linear(hidden_size, hidden_size, kernels=kernels, kernel_init=init, dtype=dtype, rngs=rngs)

        self.query = linear(qkv_init)
        self.key = linear(qkv_init)
        self.value = linear(qkv_init)
        self.out = linear(out_init)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)

    def __call__(
        self, x: jax.Array, mask: jax.Array | None, *, deterministic: bool, queries: int | None = None
    ) -> jax.Array:
        """x: [B, T, D]; mask: bool, broadcastable to [B, heads, T, T] (True = attend), or None.

        `queries=n` computes the output of the first n tokens only ([B, n, D]), attending to all T:
        the last block of a tower whose pooled output reads only [CLS] needs nothing more.
        """
        batch, length, width = x.shape
        rows = length if queries is None else queries
        if rows == length:
            q, k, v = fused_linear((self.query, self.key, self.value), x)
        else:
            q = self.query(x[:, :rows])
            k, v = fused_linear((self.key, self.value), x)
        q = q.reshape(batch, rows, self.num_heads, self.head_dim)
        k = k.reshape(batch, length, self.num_heads, self.head_dim)
        v = v.reshape(batch, length, self.num_heads, self.head_dim)
        if self.kernels != "cpu" and (deterministic or self.dropout_rate == 0.0):
            context = jax.nn.dot_product_attention(q, k, v, mask=mask)  # fused kernels on GPU/TPU
        else:
            context = self._explicit_attention(q, k, v, mask, deterministic=deterministic)
        return self.out(context.reshape(batch, rows, width))

    def _explicit_attention(self, q, k, v, mask, *, deterministic: bool):
        """Heads-major batched matmuls: on CPU about twice as fast as dot_product_attention's layout."""
        q, k, v = (t.transpose(0, 2, 1, 3) for t in (q, k, v))  # [B, heads, T, head_dim]
        logits = (q @ k.swapaxes(-1, -2)) / jnp.sqrt(self.head_dim).astype(q.dtype)
        if mask is not None:
            logits = jnp.where(mask, logits, jnp.finfo(logits.dtype).min)
        probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(q.dtype)
        if not deterministic and self.dropout_rate > 0.0:
            probs = self.dropout(probs, deterministic=False)
        return (probs @ v).transpose(0, 2, 1, 3)
