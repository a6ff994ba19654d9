"""The model as plain arrays: flat dicts keyed by '/'-joined parameter paths.

The trainer splits the NNX model once and then works on pure pytrees: a jitted step merges them back
into a module (free at trace time), so there is no `nnx.jit` overhead per step. Flat dicts keyed by
paths such as 'vision_model/layers/0/fc1/kernel' make the rest simple: phase regexes
select keys, the weight-decay mask is a dict comprehension, optimizer state kept across phases is
matched by key, and checkpoints hold ordinary arrays (RNG keys are stored as their raw uint32 data).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from clipit.runs.params import path_name

Params = dict[str, jax.Array]


@dataclass(frozen=True)
class ModelParts:
    """What it takes to rebuild the module from flat dicts (fixed for the whole run)."""

    graphdef: Any
    param_paths: dict[str, tuple]
    param_types: dict[str, type]
    rest_paths: dict[str, tuple]
    rest_types: dict[str, type]
    rest_is_key: dict[str, bool]

    def merge(self, params: Params, rest: Params) -> nnx.Module:
        flat_params = [(self.param_paths[k], self.param_types[k](v)) for k, v in params.items()]
        flat_rest = [
            (
                self.rest_paths[k],
                self.rest_types[k](jax.random.wrap_key_data(v) if self.rest_is_key[k] else v),
            )
            for k, v in rest.items()
        ]
        return nnx.merge(self.graphdef, nnx.from_flat_state(flat_params), nnx.from_flat_state(flat_rest))

    def split_rest(self, model: nnx.Module) -> Params:
        """The non-parameter state (RNG counters and keys) after a forward pass."""
        _, _, rest = nnx.split(model, nnx.Param, ...)
        return _flat_values(rest)


def split_model(model: nnx.Module) -> tuple[ModelParts, Params, Params]:
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    flat_params = nnx.to_flat_state(params)
    flat_rest = nnx.to_flat_state(rest)
    parts = ModelParts(
        graphdef=graphdef,
        param_paths={path_name(p): p for p, _ in flat_params},
        param_types={path_name(p): type(v) for p, v in flat_params},
        rest_paths={path_name(p): p for p, _ in flat_rest},
        rest_types={path_name(p): type(v) for p, v in flat_rest},
        rest_is_key={path_name(p): _is_key(v.get_value()) for p, v in flat_rest},
    )
    return parts, _flat_values(params), _flat_values(rest)


def _is_key(value: Any) -> bool:
    return isinstance(value, jax.Array) and jnp.issubdtype(value.dtype, jax.dtypes.prng_key)


def _flat_values(state: nnx.State) -> Params:
    out = {}
    for path, var in nnx.to_flat_state(state):
        value = var.get_value()
        out[path_name(path)] = jax.random.key_data(value) if _is_key(value) else value
    return out


def select(names: list[str] | set[str], patterns: list[str]) -> dict[str, set[str]]:
    """For each regex, the names it matches (`re.search`: 'projection' matches 'text_projection/kernel')."""
    compiled = [(p, re.compile(p)) for p in patterns]
    return {p: {n for n in names if rx.search(n)} for p, rx in compiled}
