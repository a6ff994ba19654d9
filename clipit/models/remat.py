"""Activation rematerialisation per transformer block (`model.remat`): a memory lever for training.

With remat on, a block keeps only its input for the backward pass and recomputes its activations
there (`nnx.remat`, i.e. `jax.checkpoint`): peak activation memory falls from every block's
intermediates to about one block's, for roughly one more forward pass of compute. The numbers are the
same; eval and embed, which take no gradient, are unaffected.
"""

from __future__ import annotations

from typing import Any

from flax import nnx


def call_block(block: nnx.Module, *args: Any, remat: bool, **static: Any) -> Any:
    """`block(*args, **static)`, rematerialised in the backward pass when `remat` is on.

    `static` holds Python values (deterministic, queries): closed over, so they stay static under remat.
    """
    if not remat:
        return block(*args, **static)
    return nnx.remat(lambda module, *inputs: module(*inputs, **static))(block, *args)


def set_remat(model: nnx.Module, remat: bool) -> nnx.Module:
    """Turn remat on or off for both towers of a DualEncoder (a static setting of its graph)."""
    model.vision_model.remat = remat
    model.text_model.remat = remat
    return model
