"""Checkpoints of a run (orbax): the train state plus a JSON record of where the run stands.

`RUN_DIR/checkpoints/<step>/state` holds the train state as a dict tree: `params` (flat, keyed by
parameter path, clipit.runs.params), `rest` (RNG state), `opt` (optimizer state), `phase_step` and
`loss_params`;
`.../meta` holds the format version, global step, phase index, loader position, validation loss and
`metrics`: every metric measured at that step, named as `train.best_by` names them ('val/loss',
'synthetic/shape/acc1'); checkpoints written before `metrics` existed have `val_loss` only.
Orbax writes each step into a temporary folder and renames it when complete, so a kill -9 leaves either
the previous checkpoint or the new one, never half of one.

Resume order (documented once, here): read `meta` of the latest step -> rebuild the model and that
phase's optimizer (its state's structure) -> restore `state` into it -> restore the loader position ->
continue with the next step of that phase.

Retention: the last `keep` checkpoints plus the best by `best_by` (default 'val/loss', lowest; a
metric without 'loss' in its name is best highest unless `best_mode` says otherwise). Only checkpoints
whose step measured that metric compete.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from clipit.errors import ModelError
from clipit.runs.layout import checkpoint_dir

FORMAT_VERSION = 1
DEFAULT_BEST_BY = "val/loss"

# orbax logs every save and restore at WARNING through absl; keep the trainer's stderr readable
logging.getLogger("absl").setLevel(logging.ERROR)


class RunCheckpoints:
    def __init__(
        self,
        run_dir: str | Path,
        keep: int = 3,
        *,
        read_only: bool = False,
        best_by: str = DEFAULT_BEST_BY,
        best_mode: str | None = None,
    ):
        self.directory = checkpoint_dir(run_dir)
        self.keep = keep
        self.best_by = best_by
        self.best_mode = best_mode or default_best_mode(best_by)
        options = ocp.CheckpointManagerOptions(
            enable_async_checkpointing=False,  # the step after a save may donate the saved buffers
            create=not read_only,
            read_only=read_only,
            cleanup_tmp_directories=not read_only,  # leftovers of a killed save
        )
        if read_only and not self.directory.is_dir():
            raise ModelError(f"{run_dir}: no checkpoints folder", "is this a clipit run folder? train first")
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def latest_step(self) -> int | None:
        steps = self.steps()
        return steps[-1] if steps else None

    def read_meta(self, step: int) -> dict[str, Any]:
        meta = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        if meta.get("format_version") != FORMAT_VERSION:
            raise ModelError(
                f"{self.directory / str(step)}: checkpoint format {meta.get('format_version')!r} "
                f"(this clipit reads {FORMAT_VERSION})",
                "continue with the clipit version that wrote it, or start a new run",
            )
        return meta

    def save(self, step: int, state: dict[str, Any], meta: dict[str, Any]) -> None:
        """Replicated arrays are saved from a host (numpy) copy, which costs less than slicing device
        replicas; sharded ones (train.mesh fsdp) as they are: each shard is written by the process
        that holds it, and nothing is gathered."""
        meta = {**meta, "format_version": FORMAT_VERSION, "step": step}
        host = jax.tree.map(
            lambda x: (
                np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array) and x.is_fully_replicated else x
            ),
            state,
        )
        self.manager.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(host), meta=ocp.args.JsonSave(meta)),
            force=True,
        )
        self.manager.wait_until_finished()
        self._prune()

    def restore_state(self, step: int, template: dict[str, Any]) -> dict[str, Any]:
        """The whole train state; `template` gives the structure (its values are not read).

        A device-array leaf of `template` is restored as a device array in that leaf's sharding,
        whatever mesh wrote the checkpoint (each device reads only its own shard); others as numpy.
        """
        abstract = jax.tree.map(_abstract, template)
        restored = self.manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
        )
        return restored["state"]

    def restore_params(self, step: int, template: dict) -> dict:
        """Only the model parameters (for eval, embed and export), as numpy."""
        abstract = {"params": jax.tree.map(lambda x: np.empty(np.shape(x), x.dtype), template)}
        args = ocp.args.PyTreeRestore(
            item=abstract,
            restore_args=jax.tree.map(lambda x: ocp.RestoreArgs(restore_type=np.ndarray), abstract),
            partial_restore=True,
        )
        return self.manager.restore(step, args=ocp.args.Composite(state=args))["state"]["params"]

    def _prune(self) -> None:
        steps = self.steps()
        keep = set(steps[-self.keep :])
        best = self.best_step()
        if best is not None:
            keep.add(best)
        for step in steps:
            if step not in keep:
                self.manager.delete(step)

    def best_step(self) -> int | None:
        """The kept step with the best `best_by` (the earliest among equals); None when none measured it."""
        sign = 1.0 if self.best_mode == "min" else -1.0
        scored = [
            (sign * value, s)
            for s in self.steps()
            if (value := metric_of(self.read_meta(s), self.best_by)) is not None
        ]
        return min(scored)[1] if scored else None

    def close(self) -> None:
        self.manager.close()


def _abstract(x: Any) -> Any:
    if isinstance(x, jax.Array):
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
    return np.empty(np.shape(x), x.dtype)


def default_best_mode(metric: str) -> str:
    return "min" if "loss" in metric else "max"


def metric_of(meta: dict[str, Any], name: str) -> float | None:
    """The value of metric `name` ('val/loss', ...) recorded in a checkpoint's meta, else None."""
    value = (meta.get("metrics") or {}).get(name)
    if value is None and name == DEFAULT_BEST_BY:
        value = meta.get("val_loss")  # checkpoints from before `metrics` was recorded
    return None if value is None or value != value else float(value)  # NaN never wins


def encode_loader_state(state: Any) -> Any:
    """Loader states may be bytes (grain): make them JSON."""
    if isinstance(state, bytes):
        return {"__bytes__": base64.b64encode(state).decode("ascii")}
    return state


def decode_loader_state(state: Any) -> Any:
    if isinstance(state, dict) and set(state) == {"__bytes__"}:
        return base64.b64decode(state["__bytes__"])
    return state
