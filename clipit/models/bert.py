"""BERT, as transformers' `BertModel` computes it.

embeddings (word + position + token type) -> LayerNorm -> dropout -> post-LN blocks (attention, dropout,
residual, LayerNorm; dense + exact gelu, dense, dropout, residual, LayerNorm) -> pooler: tanh(dense(CLS)).
Padding is masked out of attention through `attention_mask` (1 = token, 0 = padding). Dropout runs only
when `deterministic=False`. Random init is BERT's: normal(`initializer_range`) for every weight and
table, zero biases, unit LayerNorm scales.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from clipit.models.attention import SelfAttention
from clipit.models.embedding import lookup
from clipit.models.init import Normal
from clipit.models.layers import LayerNorm, Linear
from clipit.models.remat import call_block
from clipit.models.sizes import TextSizes


class BertEmbeddings(nnx.Module):
    def __init__(self, sizes: TextSizes, *, kernels: str, dtype, rngs: nnx.Rngs) -> None:
        width, init = sizes.hidden_size, Normal(sizes.initializer_range)

        def embed(count: int) -> nnx.Embed:
            table = nnx.Embed(count, width, dtype=dtype, embedding_init=init, rngs=rngs)
            table.embedding_init = init
            return table

        self.word_embeddings = embed(sizes.vocab_size)
        self.position_embeddings = embed(sizes.max_position_embeddings)
        self.token_type_embeddings = embed(sizes.type_vocab_size)
        self.LayerNorm = LayerNorm(
            width, epsilon=sizes.layer_norm_eps, kernels=kernels, dtype=dtype, rngs=rngs
        )
        self.dropout = nnx.Dropout(sizes.hidden_dropout_prob, rngs=rngs)
        self.kernels = kernels

    def __call__(self, input_ids, token_type_ids, *, deterministic: bool) -> jax.Array:
        # Summed in float32 from the float32 tables (LayerNorm computes in float32 anyway); the
        # lookups' backward passes are what makes this fast on GPUs (see embedding.py).
        x = (
            lookup(self.word_embeddings.embedding[...], input_ids, self.kernels)
            + self.position_embeddings.embedding[: input_ids.shape[1]]  # positions 0..T-1: a slice
            + lookup(self.token_type_embeddings.embedding[...], token_type_ids, self.kernels)
        )
        return self.dropout(self.LayerNorm(x), deterministic=deterministic)


class BertLayer(nnx.Module):
    def __init__(self, sizes: TextSizes, *, kernels: str, dtype, rngs: nnx.Rngs) -> None:
        width, eps, init = sizes.hidden_size, sizes.layer_norm_eps, Normal(sizes.initializer_range)
        self.attention = SelfAttention(
            width,
            sizes.num_attention_heads,
            dropout=sizes.attention_probs_dropout_prob,
            kernels=kernels,
            qkv_init=init,
            out_init=init,
            dtype=dtype,
            rngs=rngs,
        )
        self.attention_norm = LayerNorm(width, epsilon=eps, kernels=kernels, dtype=dtype, rngs=rngs)
        self.intermediate = Linear(
            width,
            sizes.intermediate_size,
            kernels=kernels,
            kernel_init=init,
            activation=sizes.hidden_act,
            dtype=dtype,
            rngs=rngs,
        )
        self.output = Linear(
            sizes.intermediate_size, width, kernels=kernels, kernel_init=init, dtype=dtype, rngs=rngs
        )
        self.output_norm = LayerNorm(width, epsilon=eps, kernels=kernels, dtype=dtype, rngs=rngs)
        self.dropout = nnx.Dropout(sizes.hidden_dropout_prob, rngs=rngs)

    def mlp(self, x: jax.Array) -> jax.Array:
        return self.output(self.intermediate(x))

    def __call__(
        self, x: jax.Array, mask: jax.Array, *, deterministic: bool, queries: int | None = None
    ) -> jax.Array:
        """[B, T, D] -> [B, T, D], or [B, queries, D]: only the first tokens (see SelfAttention)."""
        attended = self.attention(x, mask, deterministic=deterministic, queries=queries)
        x = x[:, : attended.shape[1]]
        x = self.attention_norm(x + self.dropout(attended, deterministic=deterministic))
        return self.output_norm(x + self.dropout(self.mlp(x), deterministic=deterministic))


class Bert(nnx.Module):
    def __init__(self, sizes: TextSizes, *, kernels: str, dtype=jnp.float32, rngs: nnx.Rngs) -> None:
        self.sizes = sizes
        self.embeddings = BertEmbeddings(sizes, kernels=kernels, dtype=dtype, rngs=rngs)
        self.layers = nnx.List(
            [
                BertLayer(sizes, kernels=kernels, dtype=dtype, rngs=rngs)
                for _ in range(sizes.num_hidden_layers)
            ]
        )
        self.pooler = Linear(
            sizes.hidden_size,
            sizes.hidden_size,
            kernels=kernels,
            kernel_init=Normal(sizes.initializer_range),
            dtype=dtype,
            rngs=rngs,
        )
        self.remat = False  # model.remat: recompute each layer's activations in the backward pass

    def encode(
        self,
        input_ids: jax.Array,
        attention_mask: jax.Array | None = None,
        token_type_ids: jax.Array | None = None,
        *,
        deterministic: bool = True,
        cls_only: bool = False,
    ) -> jax.Array:
        """The last hidden states [B, T, D] (with `cls_only`, [B, 1, D]: the last layer computes the
        [CLS] row alone, which is all the pooler reads)."""
        if input_ids.shape[1] > self.sizes.max_position_embeddings:
            raise ValueError(
                f"{input_ids.shape[1]} tokens exceed max_position_embeddings "
                f"{self.sizes.max_position_embeddings}; lower model.max_text_length"
            )
        if attention_mask is None:
            attention_mask = jnp.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = jnp.zeros_like(input_ids)
        mask = attention_mask.astype(bool)[:, None, None, :]  # [B, 1, 1, S]: keys that may be attended
        x = self.embeddings(input_ids, token_type_ids, deterministic=deterministic)
        *layers, last = self.layers
        for layer in layers:
            x = call_block(layer, x, mask, remat=self.remat, deterministic=deterministic)
        queries = 1 if cls_only else None
        return call_block(last, x, mask, remat=self.remat, deterministic=deterministic, queries=queries)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, *, deterministic=True):
        """Pooled output [B, D]: tanh(dense(hidden state of [CLS]))."""
        hidden = self.encode(
            input_ids, attention_mask, token_type_ids, deterministic=deterministic, cls_only=True
        )
        return jnp.tanh(self.pooler(hidden[:, 0]))
