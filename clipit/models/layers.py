"""The towers' building blocks: `Linear` and `LayerNorm` modules, and the activations.

Both are flax's `nnx.Linear` / `nnx.LayerNorm` (same parameters, same names, same maths) with two
additions: the module names its initialisers (clipit.models.init), and it takes the kernel setting
(clipit.models.kernels) when it is built. With kernels="cpu" three custom VJPs make the backward pass
faster on XLA:CPU (measured in docs/benchmarks.md, "Towers"); elsewhere these are the plain calls.

- `Linear` / `matmul`: the backward pass of `x @ W` needs dx = dy @ W.T and dW = x.T @ dy. Autodiff's
  dW contracts the row axis of x, a dot that XLA:CPU hands to Eigen instead of its faster YNNPACK
  GEMMs (about 1.7x slower than the forward GEMM of the same size). The custom VJP transposes the
  narrower of x and dy first (one copy; an optimization barrier keeps XLA from folding the transpose
  back into the dot) and runs dW as a plain row-major GEMM. Inputs of any rank are flattened to
  [N, in] first: XLA:CPU runs [B, T, D] @ W about 40% slower than the same 2-d GEMM.
- `Linear(activation=...)`: bias add + activation as one op that keeps only the GEMM output and
  recomputes the activation in the backward pass (one [N, out] array less to write and read back).
- `LayerNorm`: the two row sums of LayerNorm's input gradient as matrix-vector products with the
  scale; XLA:CPU otherwise materialises the scale broadcast to the activation's shape each time.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from clipit.models.init import ONES, ZEROS, Normal
from clipit.models.kernels import check_kernels


def quick_gelu(x: jax.Array) -> jax.Array:
    """CLIP's activation."""
    return x * jax.nn.sigmoid(1.702 * x)


def exact_gelu(x: jax.Array) -> jax.Array:
    """BERT's gelu in PyTorch's form, x/2 * (1 + erf(x/sqrt 2)). jax.nn.gelu(approximate=False)
    goes through erfc, which XLA:CPU evaluates as two polynomials, selects and divisions:
    about 2.5x the cost of erf's single polynomial, for no accuracy that fp32 parity needs."""
    return 0.5 * x * (1.0 + jax.lax.erf(x * jnp.asarray(0.7071067811865476, x.dtype)))


# HF config names (`hidden_act`) -> functions; modules keep the name (a hashable static attribute).
ACTIVATIONS = {"quick_gelu": quick_gelu, "gelu": exact_gelu}


class Linear(nnx.Linear):
    """`activation(x @ kernel + bias)` over the last axis of x, computed in `dtype`."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        kernels: str,
        kernel_init: Normal,
        use_bias: bool = True,
        activation: str | None = None,
        dtype=None,
        rngs: nnx.Rngs,
    ) -> None:
        super().__init__(
            in_features,
            out_features,
            use_bias=use_bias,
            dtype=dtype,
            kernel_init=kernel_init,
            bias_init=ZEROS,
            rngs=rngs,
        )
        self.kernel_init, self.bias_init = kernel_init, ZEROS
        self.kernels = check_kernels(kernels)
        self.activation = activation

    def __call__(self, x: jax.Array) -> jax.Array:
        dtype = self.dtype or x.dtype
        flat = x.reshape(-1, x.shape[-1]).astype(dtype)
        if self.activation is not None and self.kernels == "cpu" and dtype == jnp.float32 and self.use_bias:
            y = _bias_activation(
                _cpu_matmul(flat, self.kernel[...]), self.bias[...], ACTIVATIONS[self.activation]
            )
        else:
            y = matmul(flat, self.kernel[...].astype(dtype), self.kernels)
            if self.use_bias:
                y = y + self.bias[...].astype(dtype)
            if self.activation is not None:
                y = ACTIVATIONS[self.activation](y)
        return y.reshape(*x.shape[:-1], y.shape[-1])


def fused_linear(layers: Sequence[Linear], x: jax.Array) -> list[jax.Array]:
    """`[layer(x) for layer in layers]` (same width in, no activations) as one GEMM over the
    concatenated kernels: one [D, 3D] GEMM uses the matmul units better than three [D, D] ones."""
    first = layers[0]
    dtype = first.dtype or x.dtype
    kernel = jnp.concatenate([layer.kernel[...] for layer in layers], axis=1).astype(dtype)
    bias = jnp.concatenate([layer.bias[...] for layer in layers]).astype(dtype)
    y = matmul(x.reshape(-1, x.shape[-1]).astype(dtype), kernel, first.kernels) + bias
    y = y.reshape(*x.shape[:-1], y.shape[-1])
    return jnp.split(y, len(layers), axis=-1)


class LayerNorm(nnx.LayerNorm):
    """LayerNorm over the last axis (unit scale, zero bias at init)."""

    def __init__(self, width: int, *, epsilon: float, kernels: str, dtype=None, rngs: nnx.Rngs) -> None:
        super().__init__(width, epsilon=epsilon, dtype=dtype, scale_init=ONES, bias_init=ZEROS, rngs=rngs)
        self.scale_init, self.bias_init = ONES, ZEROS
        self.kernels = check_kernels(kernels)

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.kernels != "cpu" or (self.dtype or x.dtype) != jnp.float32:
            return super().__call__(x)
        flat = x.astype(jnp.float32).reshape(-1, x.shape[-1])
        y = _cpu_layer_norm(flat, self.scale[...], self.bias[...], self.epsilon)
        return y.reshape(x.shape)


def matmul(x: jax.Array, kernel: jax.Array, kernels: str) -> jax.Array:
    """x [N, K] @ kernel [K, M]; with kernels="cpu", the CPU-friendly weight gradient described above."""
    return _cpu_matmul(x, kernel) if kernels == "cpu" else x @ kernel


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _bias_activation(pre_bias: jax.Array, bias: jax.Array, activation) -> jax.Array:
    return activation(pre_bias + bias)


def _bias_activation_forward(pre_bias, bias, activation):
    return activation(pre_bias + bias), (pre_bias, bias)


def _bias_activation_backward(activation, residuals, grad):
    pre_bias, bias = residuals
    grad_pre = jax.vjp(activation, pre_bias + bias)[1](grad)[0]
    return grad_pre, grad_pre.sum(axis=0)


_bias_activation.defvjp(_bias_activation_forward, _bias_activation_backward)


@jax.custom_vjp
def _cpu_matmul(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return x @ kernel


def _cpu_matmul_forward(x, kernel):
    return x @ kernel, (x, kernel)


def _cpu_matmul_backward(residuals, grad):
    x, kernel = residuals
    grad_x = grad @ kernel.T  # contracts the kernel's last axis: already a fast GEMM
    if x.shape[1] <= grad.shape[1]:  # transpose the narrower operand: the copy is the cost
        grad_kernel = _materialized(x.T) @ grad
    else:  # dW = (dy.T @ x).T: a [out, N] copy and a small [out, in] one instead of an [in, N] copy
        grad_kernel = _materialized(_materialized(grad.T) @ x).T
    return grad_x.astype(x.dtype), grad_kernel.astype(kernel.dtype)


def _materialized(x: jax.Array) -> jax.Array:
    """x as computed, never folded into its consumer (a transpose stays a real row-major copy)."""
    return jax.lax.optimization_barrier(x)


_cpu_matmul.defvjp(_cpu_matmul_forward, _cpu_matmul_backward)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _cpu_layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array, epsilon: float) -> jax.Array:
    return _layer_norm_forward(x, scale, bias, epsilon)[0]


def _layer_norm_forward(x, scale, bias, epsilon):
    centred = x - x.mean(axis=-1, keepdims=True)
    rstd = jax.lax.rsqrt((centred * centred).mean(axis=-1, keepdims=True) + epsilon)
    normalized = centred * rstd
    return normalized * scale + bias, (normalized, rstd, scale)


def _layer_norm_backward(epsilon, residuals, grad):
    del epsilon
    normalized, rstd, scale = residuals
    width = normalized.shape[-1]
    grad_normalized_x = grad * normalized
    # The two row sums of the input gradient, sum(grad * scale) and sum(grad * normalized * scale),
    # as matrix-vector products: XLA:CPU otherwise materialises `scale` broadcast to grad's full shape
    # for each LayerNorm to feed its YNNPACK reductions.
    mean_grad = (grad @ scale)[:, None] / width
    mean_grad_normalized = (grad_normalized_x @ scale)[:, None] / width
    grad_x = rstd * (grad * scale - mean_grad - normalized * mean_grad_normalized)
    return grad_x, grad_normalized_x.sum(axis=0), grad.sum(axis=0)


_cpu_layer_norm.defvjp(_layer_norm_forward, _layer_norm_backward)
