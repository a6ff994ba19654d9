"""uint8 loader pixels normalised inside the jitted steps = the float32 pixels normalised on the host."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from clipit.data import preprocess
from clipit.models.build import build_model
from clipit.train.mesh import data_mesh, put_batch, put_replicated, to_host
from clipit.train.model_state import split_model
from clipit.train.optim import build_optimizer
from clipit.train.phases import plan_phases
from clipit.train.state import TrainState
from clipit.train.step import init_loss_params, make_eval_step, make_tower_features, make_train_step
from tests.support.tiny_train import tiny_config
from tests.train.step_check import fixed_batch


def test_train_eval_and_cache_steps_normalise_uint8_pixels_on_device(tiny_shards, tmp_path):
    config = tiny_config(tiny_shards, tmp_path)
    parts, params, rest = split_model(build_model(config.model, seed=3)[0])
    # heads only (cheaper to compile); the frozen towers still see the pixels in every step
    plan = plan_phases(config.train, config.data.loader, sorted(params), 256)[0]
    mesh = data_mesh(jax.devices()[:2])  # the uint8 batch is sharded like the float one
    tx = build_optimizer(plan.optimizer)
    pixels = np.random.default_rng(0).integers(0, 256, (config.train.batch_size, 32, 32, 3), dtype=np.uint8)
    as_uint8 = fixed_batch(config, config.train.batch_size) | {"pixel_values": pixels}
    as_float = as_uint8 | {"pixel_values": np.stack([preprocess.normalize(p) for p in pixels])}

    def state():
        trainable = {k: params[k] for k in sorted(plan.trainable)}
        initial = TrainState.create(params, rest, init_loss_params(config.train))
        return put_replicated(mesh, initial.replace(opt=tx.init(trainable)))

    train_step = make_train_step(parts, plan, config.train, tx, mesh)
    eval_step = make_eval_step(parts, config.train, mesh)
    features = make_tower_features(parts, mesh)

    def outputs(batch: dict) -> dict:
        towers_input = put_batch(mesh, {k: v for k, v in batch.items() if k != "caption_id"})
        new_state, metrics = train_step(state(), put_batch(mesh, batch))
        return {
            "eval_loss": float(to_host(eval_step(state(), put_batch(mesh, batch)))["loss"]),
            "train_loss": float(metrics["loss"]),
            "params": to_host(new_state.params),
            "image_pooled": np.asarray(features(params, rest, towers_input)["image_pooled"]),
        }

    got, expected = outputs(as_uint8), outputs(as_float)
    assert got["eval_loss"] == pytest.approx(expected["eval_loss"], rel=1e-6)
    assert got["train_loss"] == pytest.approx(expected["train_loss"], rel=1e-6)
    np.testing.assert_allclose(got["image_pooled"], expected["image_pooled"], atol=1e-6)
    for key in expected["params"]:
        np.testing.assert_allclose(got["params"][key], expected["params"][key], atol=1e-6, err_msg=key)
    # Without the normalisation the image tower would see 0..255: visibly different features.
    unnormalised = outputs(as_uint8 | {"pixel_values": pixels.astype(np.float32)})
    assert np.abs(unnormalised["image_pooled"] - expected["image_pooled"]).max() > 1e-2
