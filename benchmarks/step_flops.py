"""FLOPs of one full training step of the dual encoder, counted by hand (for MFU).

    from step_flops import step_flops          # in a benchmark script (benchmarks/ on sys.path)
    count = step_flops(config.model, batch, params, optimizer_settings)
    count["total"]                              # FLOPs per step; also "forward", "backward", "optimizer"

The model part is the usual MFU convention: matrix products only, 2 FLOPs per multiply-add, the backward
pass 2x the forward (a gradient for the inputs and one for the weights of every product). It counts the
work the pooled outputs need, which is what clipit's towers compute: the last block of each tower
computes its [CLS] row alone (its keys and values still cover every token), so that block costs about a
block's keys and values, not a whole block. Padded text positions are counted: they are computed.
LayerNorms, activations, softmaxes and the loss's elementwise work are left out, and the patch
embedding's input gradient, which nothing needs, is counted in (XLA's own count of a tiny step is within
1% of this). The optimizer part counts every elementwise operation of the optax chain clipit builds
(clip -> Adam moments -> decoupled weight decay -> -lr * update -> apply), per parameter: 0.02% of a
step at ViT-B/32 + BERT-base and batch 256, a few percent at a tiny model and batch.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import numpy as np

from clipit.config.model import ModelConfig
from clipit.config.train import OptimizerSettings
from clipit.train.optim import decay_mask


def block_flops(tokens: int, width: int, inner: int, *, queries: int | None = None) -> int:
    """Forward FLOPs of one transformer block on one sequence; `queries` < tokens for the [CLS]-only
    last block (the rows whose outputs are computed)."""
    rows = tokens if queries is None else queries
    keys_values = 2 * tokens * 2 * width * width  # K and V projections: every token is attended to
    query_out = 2 * rows * 2 * width * width  # Q projection and the output projection: computed rows only
    attention = 2 * 2 * rows * tokens * width  # scores q @ k^T and the weighted sum probs @ v, all heads
    mlp = 2 * rows * 2 * width * inner  # fc1 and fc2
    return keys_values + query_out + attention + mlp


def tower_flops(tokens: int, width: int, inner: int, layers: int) -> int:
    """Forward FLOPs of a tower's blocks on one sequence: all rows, then the [CLS]-only last block."""
    return (layers - 1) * block_flops(tokens, width, inner) + block_flops(tokens, width, inner, queries=1)


def forward_flops(model: ModelConfig, batch: int) -> int:
    """Forward FLOPs of both towers, both projections and the logits, for a batch of `batch` pairs."""
    vision, text, projection = model.vision, model.text, model.projection_dim
    patches = (vision.image_size // vision.patch_size) ** 2
    patch_embedding = 2 * patches * 3 * vision.patch_size**2 * vision.hidden_size  # conv = one matmul
    image_tower = tower_flops(
        patches + 1, vision.hidden_size, vision.intermediate_size, vision.num_hidden_layers
    )  # + 1: [CLS]
    text_tower = tower_flops(
        model.max_text_length, text.hidden_size, text.intermediate_size, text.num_hidden_layers
    )  # word/position/type embeddings are lookups: no products
    pooler = 2 * text.hidden_size * text.hidden_size  # BERT's pooler dense on [CLS]
    projections = 2 * projection * (vision.hidden_size + text.hidden_size)  # visual and text projection
    per_pair = patch_embedding + image_tower + text_tower + pooler + projections
    logits = 2 * batch * batch * projection  # image @ text.T over the whole batch
    return batch * per_pair + logits


def optimizer_flops_per_parameter(settings: OptimizerSettings) -> tuple[int, int]:
    """(FLOPs per parameter, extra FLOPs per weight-decayed parameter) of one optimizer step.

    Each term is one elementwise operation per parameter as the optax chain and clipit's step write it
    (scalars such as the norm's square root or 1 - b1**t are computed once, not per parameter).
    """
    if settings.name != "adamw":
        raise ValueError(f"the optimizer count covers adamw, not {settings.name}")
    per_parameter = 0
    if settings.clip == "global_norm":
        per_parameter += 2  # the global norm: g * g, summed (the logged grad_norm is this same norm)
        per_parameter += 2  # the clipped gradient: g / norm * max_norm (a select keeps g when below)
    elif settings.clip == "none":
        per_parameter += 2  # the logged grad_norm metric: g * g, summed
    else:
        raise ValueError(f"the optimizer count covers global-norm clipping, not {settings.clip}")
    per_parameter += 3  # first moment: b1 * m + (1 - b1) * g
    per_parameter += 4  # second moment: b2 * v + (1 - b2) * g * g
    per_parameter += 2  # bias corrections: m / (1 - b1**t), v / (1 - b2**t)
    per_parameter += 3  # Adam's direction: m_hat / (sqrt(v_hat) + eps), the square root counted as one
    per_parameter += 1  # the learning rate: -lr * update
    per_parameter += 1  # the update applied: p + update
    decayed = 2 if settings.weight_decay > 0 else 0  # decoupled weight decay: update + wd * p
    return per_parameter, decayed


def optimizer_flops(params: Mapping[str, object], settings: OptimizerSettings) -> int:
    """FLOPs of one optimizer step over `params` (name -> array or shape): the trainable parameters."""
    shapes = {name: tuple(getattr(value, "shape", value)) for name, value in params.items()}
    per_parameter, per_decayed = optimizer_flops_per_parameter(settings)
    mask = decay_mask({name: jax.ShapeDtypeStruct(shape, np.float32) for name, shape in shapes.items()})
    total = sum(int(np.prod(shape)) for shape in shapes.values())
    decayed = sum(int(np.prod(shape)) for name, shape in shapes.items() if mask[name])
    return per_parameter * total + per_decayed * decayed


def step_flops(
    model: ModelConfig, batch: int, params: Mapping[str, object], settings: OptimizerSettings
) -> dict[str, int]:
    """FLOPs of one phase-2 step (every parameter trainable): forward, backward (2x), optimizer, total."""
    forward = forward_flops(model, batch)
    backward = 2 * forward
    optimizer = optimizer_flops(params, settings)
    return {
        "forward": forward,
        "backward": backward,
        "optimizer": optimizer,
        "total": forward + backward + optimizer,
    }
