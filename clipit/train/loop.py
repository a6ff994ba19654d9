"""`train_and_evaluate`: one loop runs every phase of the config, from one CPU to many hosts.

Order of work: every check a user can fail (devices vs batch, data, towers, phase regexes, run
folder) -> model and state -> per phase: optimizer, step function, batches (loader or frozen-tower
cache) -> steps with logging, validation and checkpoints -> HF export and a plot of the curves.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from clipit import folder_lock
from clipit.compile_cache import enable_compilation_cache
from clipit.config import Config, save_resolved
from clipit.console import info
from clipit.data.shard_format import count_rows
from clipit.errors import ConfigError, DataError
from clipit.models.build import build_model
from clipit.models.export import export_hf
from clipit.models.kernels import kernels_for
from clipit.runs import checkpoints as ckpt
from clipit.runs.layout import export_dir, has_checkpoints
from clipit.runs.model_card import render_card
from clipit.runs.plots import plot_run
from clipit.train.cache import build_cache
from clipit.train.evaluators import RunEvaluators, build_evaluators, check_best_by
from clipit.train.feeds import CacheFeed, LoaderFeed, shard_loader
from clipit.train.gradcache import check_micro_batch_size
from clipit.train.mesh import (
    check_batch_size,
    init_distributed,
    put_batch,
    to_host,
    train_mesh,
)
from clipit.train.metrics import MetricsLog
from clipit.train.model_state import split_model
from clipit.train.optim import build_optimizer, carry_over
from clipit.train.phases import PhasePlan, plan_phases
from clipit.train.progress import TrainProgress
from clipit.train.run_config import check_resume, run_config
from clipit.train.run_tokenizer import load_run_tokenizer
from clipit.train.sharding import place
from clipit.train.state import TrainState
from clipit.train.step import init_loss_params, make_eval_step, make_tower_features, make_train_step
from clipit.train.validation import Validation


@folder_lock.scoped
def train_and_evaluate(
    config: Config,
    *,
    data: str | Path | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    devices: Sequence[jax.Device] | None = None,
) -> dict[str, Any]:
    """Train as `config` says; returns a summary (steps, final losses, val retrieval, export path).

    `devices` restricts the mesh to some of this process's devices (default: every device of the job).
    """
    config = run_config(
        config, data=data, out=out
    )  # flags folded in, absolute paths: the saved config is the run
    train = config.train
    data_dir, run_dir = train.data, train.out
    if train.compilation_cache:
        enable_compilation_cache()
    if resume:
        check_resume(config, run_dir)  # first: a refused resume is about the flags, not about the data
    check_best_by(config)
    evaluators = build_evaluators(config)  # their paths and files, before any compute
    init_distributed(train.distributed)
    mesh = train_mesh(train.mesh, devices)
    check_batch_size(train.batch_size, mesh)
    check_micro_batch_size(train, mesh)
    train_rows = count_rows(data_dir, "train")
    if train_rows == 0:
        raise DataError(f"{data_dir}: no train rows", "run `clipit build-shards` into this folder first")
    if train_rows < train.batch_size:
        raise ConfigError(
            f"train.batch_size {train.batch_size} exceeds the {train_rows} train rows of {data_dir}",
            "lower train.batch_size",
        )
    keeping = {"best_by": train.best_by, "best_mode": train.best_mode}
    checkpoints = (
        ckpt.RunCheckpoints(run_dir, train.keep_checkpoints, **keeping) if has_checkpoints(run_dir) else None
    )
    if checkpoints is not None and not resume:
        raise ConfigError(
            f"{run_dir} already holds checkpoints of a run",
            "pass --resume to continue it, or choose another --out",
        )
    model, build_info = build_model(config.model, seed=train.seed, kernels=kernels_for(mesh.devices.flat))
    tokenizer, tokenizer_path = load_run_tokenizer(config, build_info.tokenizer, model.text_sizes.vocab_size)
    if train.fixed_logit_scale is not None:  # the export then carries the scale that was used
        model.logit_scale.set_value(jnp.asarray(math.log(train.fixed_logit_scale), jnp.float32))
    parts, params, rest = split_model(model)
    plans = plan_phases(train, config.data.loader, sorted(params), train_rows)
    primary = jax.process_index() == 0

    # --- everything checked: from here on, compute and writes ---
    if primary:  # the one process that writes the run folder's own files
        folder_lock.acquire(run_dir, "train")
    if checkpoints is None:
        checkpoints = ckpt.RunCheckpoints(run_dir, train.keep_checkpoints, **keeping)
    if primary:
        save_resolved(config, run_dir)
    position = {"phase": 0, "phase_step": 0, "step": 0, "loader": None, "val_loss": None}
    resume_step = checkpoints.latest_step() if resume else None
    if resume and resume_step is None:
        info(f"{run_dir}: no checkpoint to resume from, starting the run")
    if resume_step is not None:
        position.update(checkpoints.read_meta(resume_step))
        info(f"resuming {run_dir} at step {resume_step} (phase '{plans[position['phase']].name}')")
    metrics = MetricsLog(run_dir, enabled=primary, resume_step=resume_step)
    eval_step = make_eval_step(parts, train, mesh)
    validation = Validation(config, data_dir, tokenizer, mesh)
    in_loop = RunEvaluators(evaluators, config.model, tokenizer_path)
    state = TrainState.create(params, rest, init_loss_params(train))
    step = position["step"]
    last: dict[str, Any] = {}
    started = time.perf_counter()
    with TrainProgress(total=sum(p.steps for p in plans), done=step) as bar:
        for plan in plans[position["phase"] :]:
            resuming_here = resume_step is not None and plan.index == position["phase"]
            tx = build_optimizer(plan.optimizer)
            trainable = {k: state.params[k] for k in sorted(plan.trainable)}
            trainable.update({f"loss/{k}": v for k, v in state.loss_params.items()})
            fresh_opt = jax.jit(tx.init)(place(mesh, trainable))
            state = state.replace(
                opt=fresh_opt
                if plan.reset_optimizer or state.opt is None
                else carry_over(state.opt, fresh_opt),
                phase_step=np.zeros((), np.int32),
            )
            state = place(mesh, state)  # parameters and optimizer state sharded by train.mesh
            if resuming_here:  # read straight into this mesh's layout, whatever mesh wrote it
                state = TrainState.from_tree(checkpoints.restore_state(resume_step, state.as_tree()))
            phase_step = position["phase_step"] if resuming_here else 0
            feed = _phase_feed(config, plan, data_dir, tokenizer, parts, state, mesh)
            if resuming_here and position["loader"] is not None:
                feed.set_state(ckpt.decode_loader_state(position["loader"]))
            train_step = make_train_step(parts, plan, train, tx, mesh)
            window = _Window()
            while phase_step < plan.steps:
                t0 = time.perf_counter()
                local = feed.next()
                window.waited += time.perf_counter() - t0
                state, step_metrics = train_step(state, put_batch(mesh, local))
                phase_step += 1
                step += 1
                window.steps += 1
                phase_done = phase_step == plan.steps
                if step % train.log_every == 0 or phase_done:
                    values = {k: float(v) for k, v in to_host(step_metrics).items()}
                    values.update(window.rates(train.batch_size))
                    last["train"] = metrics.write(phase=plan.name, step=step, split="train", values=values)
                    bar.update(plan.name, step, values)
                    window = _Window()
                val_loss = None
                measured: dict[str, float] = {}  # this step's metrics as train.best_by names them
                if step % train.eval_every == 0 or phase_done:
                    val = validation.run(eval_step, state)
                    if val is not None:
                        last["val"] = metrics.write(phase=plan.name, step=step, split="val", values=val)
                        bar.note(plan.name, step, val)
                        val_loss = val["loss"]
                        measured.update({f"val/{k}": v for k, v in val.items()})
                if due := in_loop.due(step, phase_done):
                    for name, values in in_loop.run(due, parts, state.params, state.rest).items():
                        last[name] = metrics.write(phase=plan.name, step=step, split=name, values=values)
                        measured.update({f"{name}/{k}": v for k, v in values.items()})
                in_loop.check_best_by(train.best_by, measured)
                if step % train.checkpoint_every == 0 or phase_done:
                    meta = {
                        "phase": plan.index,
                        "phase_step": phase_step,
                        "loader": ckpt.encode_loader_state(feed.get_state()),
                        "val_loss": val_loss,
                        "metrics": measured,
                    }
                    # The run goes on from the device state as it is: the kill-and-resume tests
                    # (CPU) show a resumed run, which starts from fresh copies, matching it exactly.
                    checkpoints.save(step, state.as_tree(), meta)
            feed.close()
    validation.close()
    metrics.close()
    summary = {
        "run_dir": str(run_dir),
        "steps": step,
        "phases": [{"name": p.name, "steps": p.steps, "trainable": len(p.trainable)} for p in plans],
        "train": last.get("train"),
        "val": last.get("val"),
        "seconds": round(time.perf_counter() - started, 1),
        "checkpoint": checkpoints.latest_step(),
        "best_checkpoint": checkpoints.best_step(),
    }
    checkpoints.close()
    if primary:
        if train.export:
            final = parts.merge(to_host(state.params), to_host(state.rest))
            summary["export"] = str(
                export_hf(
                    final,
                    export_dir(run_dir),
                    tokenizer_dir=tokenizer_path,
                    image_size=config.model.vision.image_size,
                    text_length=config.model.max_text_length,
                    card=render_card(config, run_dir, step),
                )
            )
        plot = plot_run(run_dir)
        summary["plot"] = str(plot) if plot else None
    return summary


class _Window:
    """Throughput and data-wait share between two log lines."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.waited = 0.0
        self.steps = 0

    def rates(self, batch_size: int) -> dict[str, float]:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        return {
            "samples_per_s": self.steps * batch_size / elapsed,
            "data_wait_fraction": self.waited / elapsed,
        }


def _phase_feed(config: Config, plan: PhasePlan, data_dir: Path, tokenizer, parts, state, mesh):
    seed = config.train.seed + plan.index
    if not plan.cache_frozen:
        loader = shard_loader(
            config, data_dir, "train", tokenizer=tokenizer, settings=plan.loader, seed=seed, train=True
        )
        return LoaderFeed(loader)
    info(f"phase '{plan.name}': caching the frozen towers' outputs over the train split")
    loader = shard_loader(
        config, data_dir, "train", tokenizer=tokenizer, settings=plan.loader, seed=seed, train=False
    )
    with loader:
        cache = build_cache(make_tower_features(parts, mesh), state.params, state.rest, loader, mesh)
    local_batch = config.train.batch_size // jax.process_count()
    return CacheFeed(cache, seed=seed, phase=plan.index, local_batch=local_batch)
