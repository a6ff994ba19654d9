"""Frozen-tower cache: training the heads from cached tower outputs is the same step as recomputing them."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from clipit.config import load_config
from clipit.models.build import build_model
from clipit.train.cache import FeatureCache
from clipit.train.mesh import data_mesh, put_batch, put_replicated, to_host
from clipit.train.model_state import split_model
from clipit.train.optim import build_optimizer
from clipit.train.phases import plan_phases
from clipit.train.state import TrainState
from clipit.train.step import init_loss_params, make_tower_features, make_train_step
from tests.support.tiny_train import tiny_overrides
from tests.train.step_check import fixed_batch


def test_cached_heads_step_equals_the_recomputing_step(tiny_shards, tmp_path):
    phases = (
        'train.phases=[{name="heads", steps=5, trainable=["projection", "logit_scale"], cache_frozen=true}]'
    )
    config = load_config(None, tiny_overrides(tiny_shards, tmp_path, phases))
    parts, params, rest = split_model(build_model(config.model)[0])
    plan = plan_phases(config.train, config.data.loader, sorted(params), 256)[0]
    assert plan.cache_frozen and plan.vision_frozen and plan.text_frozen
    mesh = data_mesh(jax.devices()[:1])
    tx = build_optimizer(plan.optimizer)
    raw = fixed_batch(config, config.train.batch_size)

    def state():
        trainable = {k: params[k] for k in sorted(plan.trainable)}
        return put_replicated(
            mesh,
            TrainState.create(params, rest, init_loss_params(config.train)).replace(opt=tx.init(trainable)),
        )

    step = make_train_step(parts, plan, config.train, tx, mesh)
    recomputed, recomputed_metrics = step(state(), put_batch(mesh, raw))
    pooled = make_tower_features(parts, mesh)(
        params, rest, put_batch(mesh, {k: raw[k] for k in raw if k != "caption_id"})
    )
    cached_batch = {
        "image_pooled": np.asarray(pooled["image_pooled"]),
        "text_pooled": np.asarray(pooled["text_pooled"]),
        "caption_id": raw["caption_id"],
    }
    cached, cached_metrics = step(state(), put_batch(mesh, cached_batch))
    assert float(cached_metrics["loss"]) == pytest.approx(float(recomputed_metrics["loss"]), rel=1e-6)
    for key in plan.trainable:
        np.testing.assert_allclose(to_host(cached.params[key]), to_host(recomputed.params[key]), atol=1e-7)


def test_cache_batches_cover_every_row_once_per_epoch_and_repeat_on_resume():
    rows = 10
    cache = FeatureCache(
        np.arange(rows, dtype=np.float32)[:, None], np.zeros((rows, 1), np.float32), np.arange(rows)
    )
    drawn = [cache.batch(seed=3, phase=0, step=s, local_batch=4)["caption_id"] for s in range(5)]  # 2 epochs
    flat = np.concatenate(drawn)
    assert sorted(flat[:10]) == list(range(rows)) and sorted(flat[10:]) == list(range(rows))
    assert not np.array_equal(flat[:10], flat[10:])  # a new order each epoch
    again = cache.batch(seed=3, phase=0, step=3, local_batch=4)["caption_id"]
    np.testing.assert_array_equal(again, drawn[3])  # stateless: a resumed run draws the same batch
