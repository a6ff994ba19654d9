"""The train state: what the jitted step reads and returns, and what a checkpoint holds.

A `flax.struct.dataclass`, so it is a pytree (jit, donation, sharding and `jax.tree.map` see its
fields) with typed attribute access. On disk it is the dict tree of the same five names
(`as_tree`/`from_tree`), so checkpoints keep their format (clipit.runs.checkpoints.FORMAT_VERSION).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from flax import struct

from clipit.train.model_state import Params

FIELDS = ("params", "rest", "opt", "phase_step", "loss_params")


@struct.dataclass
class TrainState:
    params: Params  # every model parameter, flat ('/'-joined paths)
    rest: Params  # non-parameter model state: dropout RNG keys (raw uint32 data) and counters
    opt: Any  # optax state of the phase's trainable parameters only (None before the first phase)
    phase_step: jax.Array  # steps taken in the current phase (drives the schedule)
    loss_params: Params  # learnable loss parameters: the SigLIP bias; empty for InfoNCE

    @classmethod
    def create(cls, params: Params, rest: Params, loss_params: Params) -> TrainState:
        return cls(
            params=params, rest=rest, opt=None, phase_step=np.zeros((), np.int32), loss_params=loss_params
        )

    def as_tree(self) -> dict[str, Any]:
        """The checkpoint's dict tree."""
        return {name: getattr(self, name) for name in FIELDS}

    @classmethod
    def from_tree(cls, tree: dict[str, Any]) -> TrainState:
        return cls(**{name: tree[name] for name in FIELDS})
