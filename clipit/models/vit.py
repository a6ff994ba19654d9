"""The CLIP vision transformer, as transformers' `CLIPVisionModel` computes it.

patch embedding (a conv without bias, stride = patch) -> [CLS] + patches -> + learned positions ->
`pre_layrnorm` (HF's spelling) -> pre-LN blocks (LN, attention, residual; LN, MLP with quick_gelu,
residual) -> `post_layernorm` of the CLS token = the pooled output.

Input: `pixel_values` NHWC float32, already normalised with CLIP's mean/std. The patch "conv" is done as
patchify + one matmul: the same numbers, and a plain GEMM is the fastest thing on every backend.

Random init is CLIP's (`CLIPPreTrainedModel._init_weights`, factor 1): width-aware normal stds for the
attention and MLP weights, 0.02 for the patch and position tables. Width-aware matters for narrow
towers: a flat 0.02 at width 128 leaves every image with nearly the same [CLS] output, and training
starts from a collapsed embedding.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from clipit.models.attention import SelfAttention
from clipit.models.init import Normal
from clipit.models.layers import LayerNorm, Linear, matmul
from clipit.models.remat import call_block
from clipit.models.sizes import VisionSizes

CLIP_INITIALIZER_RANGE = 0.02  # CLIPVisionConfig.initializer_range: patch and position tables


class VisionBlock(nnx.Module):
    def __init__(self, sizes: VisionSizes, *, kernels: str, dtype, rngs: nnx.Rngs) -> None:
        width, depth, eps = sizes.hidden_size, sizes.num_hidden_layers, sizes.layer_norm_eps
        in_proj = Normal(width**-0.5 * (2 * depth) ** -0.5)
        self.layer_norm1 = LayerNorm(width, epsilon=eps, kernels=kernels, dtype=dtype, rngs=rngs)
        self.self_attn = SelfAttention(
            width,
            sizes.num_attention_heads,
            dropout=sizes.attention_dropout,
            kernels=kernels,
            qkv_init=in_proj,
            out_init=Normal(width**-0.5),
            dtype=dtype,
            rngs=rngs,
        )
        self.layer_norm2 = LayerNorm(width, epsilon=eps, kernels=kernels, dtype=dtype, rngs=rngs)
        self.fc1 = Linear(
            width,
            sizes.intermediate_size,
            kernels=kernels,
            kernel_init=Normal((2 * width) ** -0.5),
            activation=sizes.hidden_act,
            dtype=dtype,
            rngs=rngs,
        )
        self.fc2 = Linear(
            sizes.intermediate_size, width, kernels=kernels, kernel_init=in_proj, dtype=dtype, rngs=rngs
        )

    def mlp(self, x: jax.Array) -> jax.Array:
        return self.fc2(self.fc1(x))

    def __call__(self, x: jax.Array, *, deterministic: bool, queries: int | None = None) -> jax.Array:
        """[B, T, D] -> [B, T, D], or [B, queries, D]: only the first tokens (see SelfAttention)."""
        attended = self.self_attn(self.layer_norm1(x), None, deterministic=deterministic, queries=queries)
        x = x[:, : attended.shape[1]] + attended
        return x + self.mlp(self.layer_norm2(x))


class VisionTransformer(nnx.Module):
    def __init__(self, sizes: VisionSizes, *, kernels: str, dtype=jnp.float32, rngs: nnx.Rngs) -> None:
        self.sizes = sizes
        self.dtype = dtype
        width, patch, eps = sizes.hidden_size, sizes.patch_size, sizes.layer_norm_eps
        key = rngs.params
        self.patch_embedding_init = Normal(CLIP_INITIALIZER_RANGE)
        self.class_embedding_init = Normal(width**-0.5)
        self.position_embedding_init = Normal(CLIP_INITIALIZER_RANGE)
        # [kh, kw, in, out]: HF's conv weight [out, in, kh, kw] transposed (see hf_keys).
        self.patch_embedding = nnx.Param(
            self.patch_embedding_init(key(), (patch, patch, sizes.num_channels, width))
        )
        self.class_embedding = nnx.Param(self.class_embedding_init(key(), (width,)))
        self.position_embedding = nnx.Param(self.position_embedding_init(key(), (sizes.grid**2 + 1, width)))
        self.pre_layrnorm = LayerNorm(width, epsilon=eps, kernels=kernels, dtype=dtype, rngs=rngs)
        self.layers = nnx.List(
            [
                VisionBlock(sizes, kernels=kernels, dtype=dtype, rngs=rngs)
                for _ in range(sizes.num_hidden_layers)
            ]
        )
        self.post_layernorm = LayerNorm(width, epsilon=eps, kernels=kernels, dtype=dtype, rngs=rngs)
        self.kernels = kernels
        self.remat = False  # model.remat: recompute each block's activations in the backward pass

    def embed(self, pixel_values: jax.Array) -> jax.Array:
        """[B, H, W, C] -> [B, 1 + patches, D] (CLS first, positions added)."""
        batch, height, width, channels = pixel_values.shape
        p = self.sizes.patch_size
        if height % p or width % p:
            raise ValueError(f"image {height}x{width} is not a multiple of the patch size {p}")
        gh, gw = height // p, width // p
        patches = pixel_values.astype(self.dtype).reshape(batch, gh, p, gw, p, channels)
        patches = patches.transpose(0, 1, 3, 2, 4, 5).reshape(batch * gh * gw, p * p * channels)
        kernel = self.patch_embedding[...].astype(self.dtype).reshape(p * p * channels, -1)
        tokens = matmul(patches, kernel, self.kernels).reshape(batch, gh * gw, -1)
        cls = jnp.broadcast_to(self.class_embedding[...].astype(self.dtype), (batch, 1, tokens.shape[-1]))
        positions = self.positions_for(gh, gw).astype(self.dtype)
        return jnp.concatenate([cls, tokens], axis=1) + positions[None]

    def positions_for(self, gh: int, gw: int) -> jax.Array:
        """Learned positions for a gh x gw grid; bicubic interpolation of the grid part for other sizes."""
        table = self.position_embedding[...]
        grid = self.sizes.grid
        if (gh, gw) == (grid, grid):
            return table
        return interpolate_positions(table, gh, gw)

    def __call__(self, pixel_values: jax.Array, *, deterministic: bool = True) -> jax.Array:
        """Pooled output [B, D]: post_layernorm of the CLS token."""
        x = self.pre_layrnorm(self.embed(pixel_values))
        *blocks, last = self.layers
        for block in blocks:
            x = call_block(block, x, remat=self.remat, deterministic=deterministic)
        # only CLS is pooled: the last block computes its row alone (same numbers, ~1 block less work)
        x = call_block(last, x, remat=self.remat, deterministic=deterministic, queries=1)
        return self.post_layernorm(x[:, 0])


def interpolate_positions(table: jax.Array, gh: int, gw: int) -> jax.Array:
    """A [1 + g*g, D] position table (CLS first) resized to a gh x gw grid, bicubic.

    Used at load time for a checkpoint trained at another image size, and on the fly for inputs of
    another size. jax's bicubic kernel (Keys, a=-0.5) differs slightly from torch's (a=-0.75), so this
    matches transformers' `interpolate_pos_encoding` in shape and spirit, not to the last digit.
    """
    grid = int(round((table.shape[0] - 1) ** 0.5))
    cls_pos, grid_pos = table[:1], table[1:].reshape(grid, grid, -1)
    resized = jax.image.resize(grid_pos, (gh, gw, grid_pos.shape[-1]), method="bicubic")
    return jnp.concatenate([cls_pos, resized.reshape(gh * gw, -1).astype(table.dtype)], axis=0)
