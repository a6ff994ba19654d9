"""Frozen-phase step time: towers recomputed every step vs the frozen-tower cache.

    python benchmarks/frozen_cache.py [--steps 10] [--batch 64]

Both sides run the trainer's own jitted heads-only step (`make_train_step`) on the same model and batch
size; the uncached step gets pixels and tokens (the towers run forward every step, as in CLIP-Italian),
the cached one gets the towers' pooled outputs (what `cache_frozen = true` feeds). The one-off cost of
filling the cache is one forward pass per sample, i.e. one epoch of the uncached forward.
Prints one JSON line: seconds per step for each and the ratio.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

from clipit.config import load_config
from clipit.models.build import build_model
from clipit.train.mesh import data_mesh, put_batch, put_replicated
from clipit.train.model_state import split_model
from clipit.train.optim import build_optimizer
from clipit.train.phases import plan_phases
from clipit.train.step import init_loss_params, make_tower_features, make_train_step

MODEL = [  # a small ViT-B/32-shaped pair, so that it runs on a laptop CPU in a minute
    "model.vision.hidden_size=384",
    "model.vision.num_hidden_layers=6",
    "model.vision.num_attention_heads=6",
    "model.vision.intermediate_size=1536",
    "model.vision.patch_size=32",
    "model.vision.image_size=224",
    "model.text.hidden_size=384",
    "model.text.num_hidden_layers=6",
    "model.text.num_attention_heads=6",
    "model.text.intermediate_size=1536",
    "model.max_text_length=64",
    "model.projection_dim=256",
    'train.phases=[{name="heads", steps=100, trainable=["projection", "logit_scale"], augment=false}]',
]


def time_steps(step, state, batch, steps: int) -> tuple[float, dict]:
    state, metrics = step(state, batch)  # compile
    jax.block_until_ready(metrics)
    started = time.perf_counter()
    for _ in range(steps):
        state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    return (time.perf_counter() - started) / steps, state


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    config = load_config(None, [*MODEL, f"train.batch_size={args.batch}"])
    model, _ = build_model(config.model)
    parts, params, rest = split_model(model)
    plan = plan_phases(config.train, config.data.loader, sorted(params), 10_000)[0]
    mesh = data_mesh()
    tx = build_optimizer(plan.optimizer)
    rng = np.random.default_rng(0)
    size, length = config.model.vision.image_size, config.model.max_text_length
    raw = {
        "pixel_values": rng.normal(size=(args.batch, size, size, 3)).astype(np.float32),
        "input_ids": rng.integers(5, 1000, (args.batch, length)).astype(np.int32),
        "attention_mask": np.ones((args.batch, length), np.int32),
        "caption_id": np.arange(args.batch, dtype=np.int64),
    }

    def fresh_state():
        trainable = {k: params[k] for k in sorted(plan.trainable)}
        return put_replicated(
            mesh,
            {
                "params": params,
                "rest": rest,
                "opt": tx.init(trainable),
                "phase_step": np.zeros((), np.int32),
                "loss_params": init_loss_params(config.train),
            },
        )

    step = make_train_step(parts, plan, config.train, tx, mesh)
    uncached, _ = time_steps(step, fresh_state(), put_batch(mesh, raw), args.steps)
    pooled = make_tower_features(parts, mesh)(
        params, rest, put_batch(mesh, {k: raw[k] for k in raw if k != "caption_id"})
    )
    cached_batch = put_batch(
        mesh,
        {
            "image_pooled": np.asarray(pooled["image_pooled"]),
            "text_pooled": np.asarray(pooled["text_pooled"]),
            "caption_id": raw["caption_id"],
        },
    )
    cached, _ = time_steps(
        make_train_step(parts, plan, config.train, tx, mesh), fresh_state(), cached_batch, args.steps
    )
    print(
        json.dumps(
            {
                "batch": args.batch,
                "devices": jax.device_count(),
                "uncached_s_per_step": round(uncached, 4),
                "cached_s_per_step": round(cached, 5),
                "speedup": round(uncached / cached, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
