"""One train step of the real trainer pieces on a fixed global batch, on any set of devices.

Shared by the device-count test (1 vs 8 devices in one process) and the 2-process test. Each
process feeds only its own rows of the global batch, as the trainer does.
"""

from __future__ import annotations

import jax
import numpy as np

from clipit.models.build import build_model
from clipit.train.mesh import data_mesh, put_batch, put_replicated, to_host
from clipit.train.model_state import split_model
from clipit.train.optim import build_optimizer
from clipit.train.phases import plan_phases
from clipit.train.state import TrainState
from clipit.train.step import init_loss_params, make_eval_step, make_train_step


def fixed_batch(config, batch_size: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(123)
    size, length = config.model.vision.image_size, config.model.max_text_length
    ids = rng.integers(5, 100, (batch_size, length)).astype(np.int32)
    ids[batch_size // 2] = ids[0]  # one repeated caption: multi-positive across processes
    return {
        "pixel_values": rng.normal(size=(batch_size, size, size, 3)).astype(np.float32),
        "input_ids": ids,
        "attention_mask": np.ones((batch_size, length), np.int32),
        "caption_id": np.array([hash(row.tobytes()) % 2**31 for row in ids], np.int64),
    }


def one_step_on_fixed_batch(config, devices, phase: int = 1) -> dict:
    """Loss, val loss and parameter checksums after one step of phase `phase` on `devices`."""
    model, _ = build_model(config.model, seed=config.train.seed)
    parts, params, rest = split_model(model)
    plan = plan_phases(config.train, config.data.loader, sorted(params), 256)[phase]
    mesh = data_mesh(devices)
    tx = build_optimizer(plan.optimizer)
    trainable = {k: params[k] for k in sorted(plan.trainable)}
    state = put_replicated(
        mesh,
        TrainState.create(params, rest, init_loss_params(config.train)).replace(opt=tx.init(trainable)),
    )
    batch = fixed_batch(config, config.train.batch_size)
    share = config.train.batch_size // jax.process_count()
    local = {k: v[jax.process_index() * share : (jax.process_index() + 1) * share] for k, v in batch.items()}
    before = to_host(make_eval_step(parts, config.train, mesh)(state, put_batch(mesh, local)))
    state, metrics = make_train_step(parts, plan, config.train, tx, mesh)(state, put_batch(mesh, local))
    new_params = to_host(state.params)
    return {
        "loss": float(metrics["loss"].addressable_data(0)),
        "eval_loss": float(before["loss"]),
        "grad_norm": float(metrics["grad_norm"].addressable_data(0)),
        "checksums": {k: float(np.abs(v).sum()) for k, v in sorted(new_params.items())},
    }
