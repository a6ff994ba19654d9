"""A model's parameters as the flat dict a checkpoint stores: keys are '/'-joined parameter paths
such as 'vision_model/layers/0/fc1/kernel' (what phase regexes select, too)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


def path_name(path: tuple) -> str:
    return "/".join(str(part) for part in path)


def model_params(model: nnx.Module) -> dict[str, jax.Array]:
    return {path_name(p): v.get_value() for p, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}


def set_model_params(model: nnx.Module, values: dict) -> None:
    """Put `values` (one array per parameter path, e.g. numpy from a checkpoint) into `model`."""
    flat = nnx.to_flat_state(nnx.state(model, nnx.Param))
    for path, var in flat:
        var.set_value(jnp.asarray(values[path_name(path)]))
    nnx.update(model, nnx.from_flat_state(flat))
