"""The CLIP vision transformer, as transformers' `CLIPVisionModel` computes it.

patch embedding (a conv without bias, stride = patch) -> [CLS] + patches -> + learned positions ->
`pre_layrnorm` (HF's spelling) -> pre-LN blocks (LN, attention, residual; LN, MLP with quick_gelu,
residual) -> `post_layernorm` of the CLS token = the pooled output.

Input: `pixel_values` NHWC float32, already normalised with CLIP's mean/std. The patch "conv" is done as
patchify + one matmul: the same numbers, and a plain GEMM is the fastest thing on every backend.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from clipit.models.attention import SelfAttention
from clipit.models.layers import dense, dense_activation, layer_norm, matmul
from clipit.models.sizes import VisionSizes

_normal = nnx.initializers.normal(0.02)


def quick_gelu(x: jax.Array) -> jax.Array:
    return x * jax.nn.sigmoid(1.702 * x)


def exact_gelu(x: jax.Array) -> jax.Array:
    """BERT's gelu in PyTorch's form, x/2 * (1 + erf(x/sqrt 2)). jax.nn.gelu(approximate=False)
    goes through erfc, which XLA:CPU evaluates as two polynomials, selects and divisions:
    about 2.5x the cost of erf's single polynomial, for no accuracy that fp32 parity needs."""
    return 0.5 * x * (1.0 + jax.lax.erf(x * jnp.asarray(0.7071067811865476, x.dtype)))


def activation(name: str):
    return quick_gelu if name == "quick_gelu" else exact_gelu


class VisionBlock(nnx.Module):
    def __init__(self, sizes: VisionSizes, *, dtype, rngs: nnx.Rngs) -> None:
        width, eps = sizes.hidden_size, sizes.layer_norm_eps
        self.layer_norm1 = nnx.LayerNorm(width, epsilon=eps, dtype=dtype, rngs=rngs)
        self.self_attn = SelfAttention(
            width, sizes.num_attention_heads, dropout=sizes.attention_dropout, dtype=dtype, rngs=rngs
        )
        self.layer_norm2 = nnx.LayerNorm(width, epsilon=eps, dtype=dtype, rngs=rngs)
        self.fc1 = nnx.Linear(width, sizes.intermediate_size, dtype=dtype, rngs=rngs)
        self.fc2 = nnx.Linear(sizes.intermediate_size, width, dtype=dtype, rngs=rngs)
        self.hidden_act = sizes.hidden_act  # a name (hashable static), not a function

    def __call__(self, x: jax.Array, *, deterministic: bool, queries: int | None = None) -> jax.Array:
        """[B, T, D] -> [B, T, D], or [B, queries, D]: only the first tokens (see SelfAttention)."""
        attended = self.self_attn(
            layer_norm(self.layer_norm1, x), None, deterministic=deterministic, queries=queries
        )
        x = x[:, : attended.shape[1]] + attended
        batch, length, width = x.shape
        flat = layer_norm(self.layer_norm2, x).reshape(batch * length, width)  # 2-d GEMMs (see attention.py)
        hidden = dense(self.fc2, dense_activation(self.fc1, flat, activation(self.hidden_act)))
        return x + hidden.reshape(batch, length, width)


class VisionTransformer(nnx.Module):
    def __init__(self, sizes: VisionSizes, *, dtype=jnp.float32, rngs: nnx.Rngs) -> None:
        self.sizes = sizes
        self.dtype = dtype
        width, patch = sizes.hidden_size, sizes.patch_size
        key = rngs.params
        # [kh, kw, in, out]: HF's conv weight [out, in, kh, kw] transposed (see hf_keys).
        self.patch_embedding = nnx.Param(_normal(key(), (patch, patch, sizes.num_channels, width)))
        self.class_embedding = nnx.Param(nnx.initializers.normal(width**-0.5)(key(), (width,)))
        self.position_embedding = nnx.Param(_normal(key(), (sizes.grid**2 + 1, width)))
        self.pre_layrnorm = nnx.LayerNorm(width, epsilon=sizes.layer_norm_eps, dtype=dtype, rngs=rngs)
        self.layers = nnx.List(
            [VisionBlock(sizes, dtype=dtype, rngs=rngs) for _ in range(sizes.num_hidden_layers)]
        )
        self.post_layernorm = nnx.LayerNorm(width, epsilon=sizes.layer_norm_eps, dtype=dtype, rngs=rngs)

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
        tokens = matmul(patches, kernel).reshape(batch, gh * gw, -1)
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
        x = layer_norm(self.pre_layrnorm, self.embed(pixel_values))
        *blocks, last = self.layers
        for block in blocks:
            x = block(x, deterministic=deterministic)
        # only CLS is pooled: the last block computes its row alone (same numbers, ~1 block less work)
        x = last(x, deterministic=deterministic, queries=1)
        return layer_norm(self.post_layernorm, x[:, 0])


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
