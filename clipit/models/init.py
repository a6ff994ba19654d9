"""Random initialisation: each module names its parameters' initialisers, `draw_params` fills them.

A module that owns a parameter `name` keeps its initialiser as the attribute `name_init` (the modules
in clipit.models.layers do so for `kernel`, `bias` and `scale`; the towers for their raw tables). The
initialisers are small values, `Normal(std)` and `Constant(value)`, that work both ways:

- as jax initialisers (`init(key, shape, dtype)`), when a module is built eagerly with `nnx.Rngs`;
- as numpy draws (`init.draw(rng, shape)`), what `draw_params` uses for a whole model: jax's own
  initialisers compile one kernel per parameter shape, tens of seconds on a small CPU before the first
  step, while numpy draws them in milliseconds. Parameters are drawn in path order from one generator,
  so a seed gives the same model every time.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


@dataclass(frozen=True)
class Normal:
    """Normal(0, std) values."""

    std: float

    def __call__(self, key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
        return (jax.random.normal(key, shape, jnp.float32) * self.std).astype(dtype)

    def draw(self, rng: np.random.Generator, shape) -> np.ndarray:
        return (rng.standard_normal(shape, dtype=np.float32) * self.std).astype(np.float32)


@dataclass(frozen=True)
class Constant:
    """Every value `value` (draws nothing from the generator)."""

    value: float

    def __call__(self, key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
        del key
        return jnp.full(shape, self.value, dtype)

    def draw(self, rng: np.random.Generator, shape) -> np.ndarray:
        del rng
        return np.full(shape, self.value, np.float32)


ZEROS = Constant(0.0)
ONES = Constant(1.0)


def initializers(model: nnx.Module) -> dict[str, Normal | Constant]:
    """Every parameter's initialiser, by '/'-joined path, as the module owning it names it."""
    nodes = list(nnx.iter_graph(model))
    modules = {tuple(path): node for path, node in nodes if isinstance(node, nnx.Module)}
    found = {}
    for path, node in nodes:
        if isinstance(node, nnx.Param):
            *parent, name = path
            init = getattr(modules.get(tuple(parent)), f"{name}_init", None)
            if not isinstance(init, (Normal, Constant)):
                raise TypeError(f"parameter {'/'.join(map(str, path))} has no initialiser ({name}_init)")
            found["/".join(map(str, path))] = init
    return found


def draw_params(model: nnx.Module, seed: int) -> None:
    """Fill every parameter of `model` (built abstractly or not) with its initialiser's numpy draw."""
    inits = initializers(model)
    rng = np.random.default_rng(seed)
    state = nnx.state(model, nnx.Param)
    for path, variable in nnx.to_flat_state(state):
        init = inits["/".join(map(str, path))]
        variable.set_value(jnp.asarray(init.draw(rng, variable.get_value().shape)))
    nnx.update(model, state)
