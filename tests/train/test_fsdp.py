"""`train.mesh` data x fsdp: the losses of pure data parallelism, parameters and optimizer state split
over `fsdp` (per-device bytes fall), the frozen-tower cache and GradCache on it."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec
from typer.testing import CliRunner

from clipit.cli.main import app
from clipit.config import load_config
from clipit.config.train import MeshSettings
from clipit.errors import ConfigError
from clipit.models.build import build_model
from clipit.train.cache import local_rows
from clipit.train.mesh import put_batch, to_host, train_mesh
from clipit.train.model_state import split_model
from clipit.train.optim import build_optimizer
from clipit.train.phases import plan_phases
from clipit.train.sharding import bytes_per_device, place, spec_for
from clipit.train.state import TrainState
from clipit.train.step import init_loss_params, make_tower_features, make_train_step
from tests.support.tiny_train import tiny_overrides
from tests.train.step_check import fixed_batch

STEPS = 3
MESHES = [(8, 1), (2, 4), (1, 8)]


def _mesh(data: int, fsdp: int):
    return train_mesh(MeshSettings(data=data, fsdp=fsdp))


def _steps(config, mesh, *, micro: int | None = None) -> tuple[list[float], TrainState]:
    """Losses of STEPS real train steps (phase 'all', AdamW) on fixed batches, and the state after."""
    train = config.train.model_copy(update={"micro_batch_size": micro})
    model, _ = build_model(config.model, seed=0)
    parts, params, rest = split_model(model)
    plan = plan_phases(train, config.data.loader, sorted(params), 256)[1]
    tx = build_optimizer(plan.optimizer)
    trainable = {k: params[k] for k in sorted(plan.trainable)}
    state = TrainState.create(params, rest, init_loss_params(train)).replace(opt=tx.init(trainable))
    state = place(mesh, state)
    step = make_train_step(parts, plan, train, tx, mesh)
    losses = []
    for i in range(STEPS):
        batch = fixed_batch(config, train.batch_size)
        batch["pixel_values"] = np.roll(batch["pixel_values"], i, axis=0)  # a different batch each step
        state, metrics = step(state, put_batch(mesh, batch))
        losses.append(float(to_host(metrics)["loss"]))
    return losses, state


@pytest.fixture(scope="module")
def config(tiny_shards, tmp_path_factory):
    assert jax.device_count() == 8, "run with XLA_FLAGS=--xla_force_host_platform_device_count=8"
    return load_config(None, tiny_overrides(tiny_shards, tmp_path_factory.mktemp("unused")))


@pytest.fixture(scope="module")
def runs(config):
    return {shape: _steps(config, _mesh(*shape)) for shape in MESHES}


def test_fsdp_gives_the_losses_of_data_parallelism(runs):
    reference, _ = runs[(8, 1)]
    for shape in MESHES[1:]:
        losses, state = runs[shape]
        np.testing.assert_allclose(losses, reference, rtol=1e-4, err_msg=str(shape))
        ref_params, params = to_host(runs[(8, 1)][1].params), to_host(state.params)
        for key in ref_params:
            if key.endswith("key/bias"):  # softmax ignores it: its gradient is rounding noise
                continue
            np.testing.assert_allclose(params[key], ref_params[key], rtol=1e-4, atol=1e-5, err_msg=key)


def test_weights_and_optimizer_state_are_split_over_fsdp(runs):
    _, state = runs[(2, 4)]
    kernel = state.params["text_model/embeddings/word_embeddings/embedding"]  # [256, 32]
    assert kernel.addressable_shards[0].data.shape == (64, 32)  # a quarter of the rows per device
    adam = [x for x in jax.tree.leaves(state.opt) if x.shape == kernel.shape]
    assert len(adam) == 2  # its two moments, split the same way
    assert all(x.addressable_shards[0].data.shape == (64, 32) for x in adam)
    assert state.params["logit_scale"].sharding.is_fully_replicated


def test_per_device_bytes_fall_by_the_fsdp_factor(config, runs):
    def device_bytes(state):  # parameters + optimizer state held on device 0
        return bytes_per_device((state.params, state.opt), jax.devices()[0])

    full = device_bytes(runs[(8, 1)][1])
    assert device_bytes(_steps(config, _mesh(4, 2))[1]) < 0.6 * full
    assert device_bytes(runs[(2, 4)][1]) < 0.3 * full


def test_gradcache_on_an_fsdp_mesh(config):
    """GradCache (micro-batches of 8 rows) on data=2 x fsdp=4 takes the steps it takes on data=8."""
    reference, _ = _steps(config, _mesh(8, 1), micro=8)
    losses, _ = _steps(config, _mesh(2, 4), micro=8)
    np.testing.assert_allclose(losses, reference, rtol=1e-4)


def test_the_rule_replicates_small_tensors_and_splits_the_largest_divisible_dimension():
    assert spec_for((32,), 4) == PartitionSpec()  # bias, LayerNorm
    assert spec_for((), 4) == PartitionSpec()  # logit scale
    assert spec_for((17, 32), 4) == PartitionSpec(None, "fsdp")  # position table: 17 is not divisible
    assert spec_for((96, 32), 4) == PartitionSpec("fsdp", None)
    assert spec_for((3, 5), 4) == PartitionSpec()  # nothing divisible: replicated
    assert spec_for((96, 32), 1) == PartitionSpec()


def test_a_mesh_that_does_not_cover_the_devices_is_refused():
    with pytest.raises(ConfigError, match="train.mesh: data 3 x fsdp 2"):
        _mesh(3, 2)
    with pytest.raises(ConfigError, match="fsdp 3"):
        _mesh(-1, 3)


def test_frozen_tower_cache_features_on_an_fsdp_mesh(config):
    """The cache's tower pass gives the data-parallel features, every process's rows in order."""
    model, _ = build_model(config.model, seed=0)
    parts, params, rest = split_model(model)
    batch = fixed_batch(config, config.train.batch_size)
    inputs = {k: batch[k] for k in ("pixel_values", "input_ids", "attention_mask")}
    features = {}
    for shape in [(8, 1), (2, 4)]:
        mesh = _mesh(*shape)
        state = place(mesh, TrainState.create(params, rest, {}))
        out = make_tower_features(parts, mesh)(state.params, state.rest, put_batch(mesh, inputs))
        features[shape] = {k: local_rows(v) for k, v in out.items()}
    for key, expected in features[(8, 1)].items():
        assert expected.shape[0] == config.train.batch_size
        np.testing.assert_allclose(features[(2, 4)][key], expected, rtol=1e-5, atol=1e-6, err_msg=key)


def test_cli_refuses_a_mesh_that_does_not_fit_before_training(tiny_shards, tmp_path):
    args = ["train"]
    for item in tiny_overrides(tiny_shards, tmp_path / "run", "train.mesh.fsdp=3"):
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "train.mesh: data -1 x fsdp 3 does not cover the 8 devices" in result.output
    assert not (tmp_path / "run" / "checkpoints").exists()
    zero = CliRunner().invoke(app, ["config", "show", "--set", "train.mesh.data=0"])
    assert zero.exit_code == 2 and "mesh.data must be -1" in zero.output
