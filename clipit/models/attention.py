"""Multi-head self-attention shared by both towers (CLIP's and BERT's attention are the same maths).

On GPU/TPU, inference and dropout-free training go through `jax.nn.dot_product_attention` (fused
kernels where the backend has them). On CPU, and whenever attention-probability dropout is on (BERT
trains with 0.1, which needs the probabilities themselves), the maths is written out with heads-major
batched matmuls, measured faster there (benchmarks/towers.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from clipit.models.layers import dense, matmul


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

    def __call__(
        self, x: jax.Array, mask: jax.Array | None, *, deterministic: bool, queries: int | None = None
    ) -> jax.Array:
        """x: [B, T, D]; mask: bool, broadcastable to [B, heads, T, T] (True = attend), or None.

        `queries=n` computes the output of the first n tokens only ([B, n, D]), attending to all T:
        the last block of a tower whose pooled output reads only [CLS] needs nothing more.
        """
        batch, length, width = x.shape
        rows = length if queries is None else queries
        flat = x.reshape(batch * length, width)  # 2-d GEMMs: XLA:CPU runs [B, T, D] @ W ~40% slower
        if rows == length:  # one [D, 3D] GEMM instead of three [D, D]: better use of the matmul units
            q, k, v = jnp.split(self._fused_projection(flat, (self.query, self.key, self.value)), 3, axis=-1)
        else:
            q = dense(self.query, x[:, :rows].reshape(batch * rows, width))
            k, v = jnp.split(self._fused_projection(flat, (self.key, self.value)), 2, axis=-1)
        q = q.reshape(batch, rows, self.num_heads, self.head_dim)
        k = k.reshape(batch, length, self.num_heads, self.head_dim)
        v = v.reshape(batch, length, self.num_heads, self.head_dim)
        if jax.default_backend() != "cpu" and (deterministic or self.dropout_rate == 0.0):
            context = jax.nn.dot_product_attention(q, k, v, mask=mask)  # fused kernels on GPU/TPU
        else:
            context = self._explicit_attention(q, k, v, mask, deterministic=deterministic)
        return dense(self.out, context.reshape(batch * rows, width)).reshape(batch, rows, width)

    def _fused_projection(self, flat: jax.Array, linears: tuple[nnx.Linear, ...]) -> jax.Array:
        dtype = linears[0].dtype or flat.dtype
        kernel = jnp.concatenate([linear.kernel[...] for linear in linears], axis=1).astype(dtype)
        bias = jnp.concatenate([linear.bias[...] for linear in linears]).astype(dtype)
        return matmul(flat.astype(dtype), kernel) + bias

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
