"""Build a DualEncoder without computing anything first: abstractly, then filled.

`abstract_model` builds the module under `nnx.eval_shape` (parameters are shapes only) with real
dropout RNG state; a checkpoint then fills the parameters (clipit.models.build), or `create_model`
draws them from the initialisers each module names (clipit.models.init).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from clipit.models.dual_encoder import DualEncoder
from clipit.models.init import draw_params
from clipit.models.kernels import kernels_for
from clipit.models.sizes import TextSizes, VisionSizes


def create_model(
    vision: VisionSizes,
    text: TextSizes,
    projection_dim: int,
    logit_scale_init: float,
    dtype,
    seed: int,
    kernels: str | None = None,
) -> DualEncoder:
    """A randomly initialised DualEncoder, reproducible from `seed`.

    The module is built abstractly (`nnx.eval_shape`, no compute) and its parameters drawn with numpy
    from the initialisers each module names (clipit.models.init: transformers' CLIP and BERT
    initialisation); every Dropout gets its own key from seed + 1.
    """
    model = abstract_model(vision, text, projection_dim, logit_scale_init, dtype, seed, kernels)
    draw_params(model, seed)
    return model


def abstract_model(
    vision: VisionSizes,
    text: TextSizes,
    projection_dim: int,
    logit_scale_init: float,
    dtype,
    seed: int,
    kernels: str | None = None,
) -> DualEncoder:
    """A DualEncoder whose parameters are shapes only (`jax.ShapeDtypeStruct`), to be filled from a
    checkpoint or random init without computing values first; its dropout RNG state is real (from
    seed + 1, one key per Dropout). `kernels`: as for `build_model`."""
    kernels = kernels or kernels_for()

    def build() -> DualEncoder:
        rngs = nnx.Rngs(0)
        for stream in nnx.iter_graph(rngs):
            if type(stream[1]) is nnx.RngStream:
                object.__setattr__(stream[1], "__class__", _TracedStream)
        return DualEncoder(
            vision,
            text,
            projection_dim,
            logit_scale_init=logit_scale_init,
            dtype=dtype,
            kernels=kernels,
            rngs=rngs,
        )

    model = nnx.eval_shape(build)
    for _, node in nnx.iter_graph(model):
        if type(node) is _TracedStream:
            object.__setattr__(node, "__class__", nnx.RngStream)  # plain streams, as when built eagerly
    state = nnx.state(model, nnx.Not(nnx.Param))
    flat = nnx.to_flat_state(state)
    # Split as many keys as there are variables, parameters included: the same dropout keys per seed
    # as when parameters and RNG state were initialised in one pass. Rows go through numpy: iterating
    # a key array compiles an unstack of every row (a second for a large model).
    count = len(nnx.to_flat_state(nnx.state(model)))
    keys = iter(np.asarray(jax.random.key_data(jax.random.split(jax.random.key(seed + 1), count))))
    for path, variable in flat:
        kind = type(variable)
        if issubclass(kind, nnx.RngKey):
            variable.set_value(jax.random.wrap_key_data(next(keys)))
        elif issubclass(kind, nnx.RngCount):
            variable.set_value(jnp.asarray(np.zeros(variable.get_value().shape, np.uint32)))
        else:  # pragma: no cover - the towers hold no other state
            raise TypeError(f"unexpected state {'/'.join(map(str, path))} of type {kind.__name__}")
    nnx.update(model, state)
    return model


class _TracedStream(nnx.RngStream):
    """An RngStream for building under `nnx.eval_shape`: the same keys, but the counter is replaced
    instead of updated in place. flax's in-place update compares the traced value's sharding, whose
    error message walks the whole trace so far: quadratic, 15 s to build ViT-B/32 + BERT-base."""

    def __call__(self) -> jax.Array:
        count = self.count.get_value()
        key = jax.random.fold_in(self.key.get_value(), count)
        self.count.set_value(count + 1)
        return key
