"""Peak step memory and time of GradCache micro-batching (`train.micro_batch_size`) against the full batch.

    .venv/bin/python benchmarks/micro_batch.py [--batch 128] [--steps 5]

For micro-batch sizes B, B/2, B/4 and B/8 (B: the full batch, no micro-batching) it compiles the trainer's
own phase-2 step (`make_train_step`: both towers trainable, AdamW, InfoNCE) of the `configs/tiny.toml`
model and reports XLA's `memory_analysis()` of the compiled step: `temp_size_in_bytes`, the scratch
memory the step needs on top of its arguments and outputs (activations kept for the backward pass
live here, which is what micro-batching bounds). Time per step is the median of `--steps` steps after
the compiling one; the sizes take turns step by step. Ratios are against the full batch. One JSON line per micro size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import numpy as np

from clipit.config import load_config
from clipit.models.build import build_model
from clipit.train.mesh import data_mesh, put_batch, put_replicated
from clipit.train.model_state import split_model
from clipit.train.optim import build_optimizer
from clipit.train.phases import plan_phases
from clipit.train.step import init_loss_params, make_train_step


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    base = load_config("tiny", [f"train.batch_size={args.batch}"])
    model, _ = build_model(base.model)
    parts, params, rest = split_model(model)
    plan = plan_phases(base.train, base.data.loader, sorted(params), 100_000)[1]  # phase 2: everything trains
    mesh = data_mesh()
    tx = build_optimizer(plan.optimizer)
    rng = np.random.default_rng(0)
    size, length, batch = base.model.vision.image_size, base.model.max_text_length, args.batch
    raw = put_batch(mesh, {
        "pixel_values": rng.integers(0, 256, (batch, size, size, 3)).astype(np.uint8),
        "input_ids": rng.integers(5, 150, (batch, length)).astype(np.int32),
        "attention_mask": np.ones((batch, length), np.int32),
        "caption_id": np.arange(batch, dtype=np.int64),
    })  # fmt: skip
    runs = {}
    for micro in (batch, batch // 2, batch // 4, batch // 8):
        train = base.train.model_copy(update={"micro_batch_size": None if micro == batch else micro})
        trainable = {k: params[k] for k in sorted(plan.trainable)}
        state = put_replicated(mesh, {
            "params": params, "rest": rest, "opt": tx.init(trainable),
            "phase_step": np.zeros((), np.int32), "loss_params": init_loss_params(train),
        })  # fmt: skip
        step = make_train_step(parts, plan, train, tx, mesh)
        memory = step.lower(state, raw).compile().memory_analysis()
        state, metrics = step(state, raw)  # compile and run once
        jax.block_until_ready(metrics)
        runs[micro] = {"step": step, "state": state, "temp": memory.temp_size_in_bytes, "times": []}
    # sizes take turns step by step, so load from other processes hits them alike
    for _ in range(args.steps):
        for run in runs.values():
            started = time.perf_counter()
            run["state"], run["metrics"] = run["step"](run["state"], raw)
            jax.block_until_ready(run["metrics"])
            run["times"].append(time.perf_counter() - started)
    full = runs[batch]
    for micro, run in runs.items():
        seconds = statistics.median(run["times"])
        print(json.dumps({
            "batch": batch, "micro": "full" if micro == batch else micro, "devices": mesh.devices.size,
            "temp_mib": round(run["temp"] / 2**20, 1), "s_per_step": round(seconds, 4),
            "loss": round(float(run["metrics"]["loss"]), 5),  # the same step sequence: equal losses
            "temp_ratio": round(run["temp"] / full["temp"], 3),
            "time_ratio": round(seconds / statistics.median(full["times"]), 3),
        }))  # fmt: skip


if __name__ == "__main__":
    main()
