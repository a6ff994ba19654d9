"""The towers' dense layers and LayerNorms, with backward passes that run fast on XLA:CPU.

Same maths everywhere; on GPU/TPU (and for LayerNorm/activations outside float32) these are the plain
`nnx` calls. On CPU three custom VJPs (measured in docs/benchmarks.md, "Towers"):

- `dense` / `matmul`: the backward pass of `x @ W` needs dx = dy @ W.T and dW = x.T @ dy. Autodiff's dW
  contracts the row axis of x, a dot that XLA:CPU hands to Eigen instead of its faster YNNPACK GEMMs
  (about 1.7x slower than the forward GEMM of the same size). The custom VJP transposes the narrower
  of x and dy first (one copy; an optimization barrier keeps XLA from folding the transpose back into
  the dot) and runs dW as a plain row-major GEMM.
- `dense_activation`: bias add + activation as one op that keeps only the GEMM output and recomputes
  the activation in the backward pass (one [N, out] array less to write and read back).
- `layer_norm`: the two row sums of LayerNorm's input gradient as matrix-vector products with the
  scale; XLA:CPU otherwise materialises the scale broadcast to the activation's shape each time.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx


def dense(layer: nnx.Linear, x: jax.Array) -> jax.Array:
    """`layer(x)` for 2-d x ([N, in] -> [N, out]), in the layer's compute dtype."""
    dtype = layer.dtype or x.dtype
    y = matmul(x.astype(dtype), layer.kernel[...].astype(dtype))
    if layer.bias is not None:
        y = y + layer.bias[...].astype(dtype)
    return y


def dense_activation(layer: nnx.Linear, x: jax.Array, activation) -> jax.Array:
    """`activation(layer(x))` for 2-d x. Autodiff would keep the activation's intermediates (e.g.
    quick_gelu's sigmoid) as a second [N, out] array and read it back twice; on CPU, where these
    elementwise passes are memory-bound, the backward pass recomputes them from the GEMM output."""
    dtype = layer.dtype or x.dtype
    if jax.default_backend() != "cpu" or dtype != jnp.float32 or layer.bias is None:
        return activation(dense(layer, x))
    return _bias_activation(matmul(x.astype(dtype), layer.kernel[...]), layer.bias[...], activation)


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


def matmul(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """x [N, K] @ kernel [K, M], with the CPU-friendly weight gradient described above."""
    if jax.default_backend() == "cpu":
        return _cpu_matmul(x, kernel)
    return x @ kernel


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


def layer_norm(layer: nnx.LayerNorm, x: jax.Array) -> jax.Array:
    """`layer(x)` over the last axis, with a cheaper backward pass on CPU in float32."""
    plain = layer.scale is None or layer.bias is None or (layer.dtype or x.dtype) != jnp.float32
    if plain or jax.default_backend() != "cpu":
        return layer(x)
    flat = x.astype(jnp.float32).reshape(-1, x.shape[-1])
    y = _cpu_layer_norm(flat, layer.scale[...], layer.bias[...], layer.epsilon)
    return y.reshape(x.shape)


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
