"""Optimizer and learning-rate schedule of one phase.

The optax chain is `clip -> adam|belief moments -> decoupled weight decay`; the step multiplies the
result by `-lr(phase_step)`. That is `optax.adamw` / `optax.adabelief` with a schedule, but with the
schedule outside the optimizer state: a phase that keeps the previous phase's moments still starts its
own warmup. The optimizer only ever sees the trainable parameters, so frozen ones carry no state.
"""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import optax

from clipit.config.train import OptimizerSettings
from clipit.train.model_state import Params

# Decay spares biases, norms (HF CLIP spells one 'pre_layrnorm') and the logit scale: names and ndim < 2.
_NO_DECAY = re.compile(r"(bias|norm|layrnorm|logit_scale)", re.IGNORECASE)


def decay_mask(params: Params) -> dict[str, bool]:
    return {k: (v.ndim >= 2 and not _NO_DECAY.search(k)) for k, v in params.items()}


def build_optimizer(settings: OptimizerSettings) -> optax.GradientTransformation:
    parts = []
    if settings.clip == "global_norm":
        parts.append(optax.clip_by_global_norm(settings.clip_value))
    elif settings.clip == "adaptive":
        parts.append(optax.adaptive_grad_clip(settings.clip_value))
    if settings.name == "adamw":
        parts.append(optax.scale_by_adam(b1=settings.b1, b2=settings.b2, eps=settings.eps))
    else:
        parts.append(
            optax.scale_by_belief(b1=settings.b1, b2=settings.b2, eps=settings.eps, eps_root=settings.eps)
        )
    if settings.weight_decay > 0:
        parts.append(optax.add_decayed_weights(settings.weight_decay, mask=decay_mask))
    return optax.chain(*parts)


def learning_rate(
    step: jax.Array, *, peak: float, warmup_steps: int, total_steps: int, end: float
) -> jax.Array:
    """Linear warmup from 0 to `peak` over `warmup_steps`, then cosine down to `end` at `total_steps`."""
    step = jnp.asarray(step, jnp.float32)
    warm = peak * (step + 1) / max(warmup_steps, 1)  # the first step already moves (lr > 0)
    decay_span = max(total_steps - warmup_steps, 1)
    progress = jnp.clip((step - warmup_steps) / decay_span, 0.0, 1.0)
    cosine = end + (peak - end) * 0.5 * (1 + jnp.cos(math.pi * progress))
    return jnp.where(step < warmup_steps, warm, cosine)


def carry_over(old_state, new_state):
    """New optimizer state with the old one's values wherever a leaf of the same path and shape exists.

    Used when a phase keeps the optimizer state: moments of parameters trained in both phases carry on;
    parameters that just became trainable start from zero moments.
    """
    old = {jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_flatten_with_path(old_state)[0]}

    def pick(path, new_leaf):
        old_leaf = old.get(jax.tree_util.keystr(path))
        if old_leaf is not None and jnp.shape(old_leaf) == jnp.shape(new_leaf):
            return old_leaf
        return new_leaf

    return jax.tree_util.tree_map_with_path(pick, new_state)
