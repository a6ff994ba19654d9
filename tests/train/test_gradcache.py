"""GradCache micro-batching (`train.micro_batch_size`) gives the full-batch loss, gradients and update."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from typer.testing import CliRunner

from clipit.cli.main import app
from clipit.config import load_config
from clipit.errors import ClipitError
from clipit.models.build import build_model
from clipit.train import gradcache
from clipit.train.gradcache import check_micro_batch_size
from clipit.train.mesh import data_mesh, put_batch, put_replicated, to_host
from clipit.train.model_state import split_model
from clipit.train.phases import plan_phases
from clipit.train.state import TrainState
from clipit.train.step import init_loss_params, make_tower_features, make_train_step
from tests.support.tiny_train import params_at, tiny_overrides, tiny_phases
from tests.train.step_check import fixed_batch

BATCH = 16
NO_DROPOUT = "model.text.dropout=0.0"


def _keep_grads() -> optax.GradientTransformation:
    """An 'optimizer' whose state is the last gradient: the step hands its exact gradients back."""
    return optax.GradientTransformation(
        init=lambda params: jax.tree.map(jnp.zeros_like, params),
        update=lambda grads, state, params=None: (grads, grads),
    )


def _config(shards, tmp_path, *extra):
    return load_config(None, tiny_overrides(shards, tmp_path / "run", f"train.batch_size={BATCH}", *extra))


def _one_step(config, devices, *, phase=1, micro=None, cached=False, duplicate=True):
    """Loss, gradients and next RNG state of one real train step on a fixed batch."""
    train = config.train.model_copy(update={"micro_batch_size": micro})
    model, _ = build_model(config.model, seed=0)
    parts, params, rest = split_model(model)
    plan = plan_phases(train, config.data.loader, sorted(params), 256)[phase]
    mesh = data_mesh(devices)
    tx = _keep_grads()
    opt_params = {k: params[k] for k in sorted(plan.trainable)}
    opt_params.update({f"loss/{k}": v for k, v in init_loss_params(train).items()})
    state = TrainState.create(params, rest, init_loss_params(train)).replace(opt=tx.init(opt_params))
    state = put_replicated(mesh, state)
    batch = fixed_batch(config, BATCH)
    if not duplicate:
        batch["caption_id"] = np.arange(BATCH, dtype=np.int64)
    if cached:  # the frozen-tower cache's feed: pooled tower outputs instead of pixels and tokens
        towers = make_tower_features(parts, mesh)(state.params, state.rest, put_batch(mesh, batch))
        batch = {**{k: np.asarray(v) for k, v in towers.items()}, "caption_id": batch["caption_id"]}
    state, metrics = make_train_step(parts, plan, train, tx, mesh)(state, put_batch(mesh, batch))
    return float(np.asarray(metrics["loss"])), to_host(state.opt), to_host(state.rest)


def _assert_same(full, micro):
    (loss_a, grads_a, rest_a), (loss_b, grads_b, rest_b) = full, micro
    assert loss_b == pytest.approx(loss_a, rel=1e-6)
    assert grads_a.keys() == grads_b.keys()
    scale = max(float(np.abs(g).max()) for g in grads_a.values())
    for key in grads_a:
        # atol: a gradient that is 0 in exact arithmetic (attention key biases) holds only rounding noise
        np.testing.assert_allclose(grads_b[key], grads_a[key], rtol=1e-5, atol=1e-6 * scale, err_msg=key)
    assert rest_a.keys() == rest_b.keys()
    for key in rest_a:
        np.testing.assert_array_equal(rest_b[key], rest_a[key], err_msg=key)


@pytest.mark.parametrize(
    ("loss", "multi_positive", "duplicate", "micro"),
    [
        ("infonce", True, True, 4),
        ("infonce", False, False, 8),
        ("siglip", True, True, 2),
        ("siglip", False, True, 4),
    ],
)
def test_micro_batches_give_the_full_batch_gradients(
    tiny_shards, tmp_path, loss, multi_positive, duplicate, micro
):
    config = _config(
        tiny_shards,
        tmp_path,
        NO_DROPOUT,
        f"train.loss={loss}",
        f"train.multi_positive={str(multi_positive).lower()}",
    )
    devices = jax.devices()[:1]
    full = _one_step(config, devices, duplicate=duplicate)
    assert np.abs(full[1]["text_model/embeddings/word_embeddings/embedding"]).max() > 0  # the towers train
    _assert_same(full, _one_step(config, devices, micro=micro, duplicate=duplicate))


def test_micro_batches_on_the_frozen_tower_cache_feed(tiny_shards, tmp_path):
    config = _config(tiny_shards, tmp_path, "train.loss=siglip")
    devices = jax.devices()[:1]
    full = _one_step(config, devices, phase=0, cached=True)
    assert set(full[1]) == {
        "loss/logit_bias",
        "logit_scale",
        "text_projection/kernel",
        "visual_projection/kernel",
    }
    _assert_same(full, _one_step(config, devices, phase=0, micro=4, cached=True))


def test_micro_batches_on_the_eight_device_mesh_equal_one_device_full_batch(tiny_shards, tmp_path):
    assert jax.device_count() == 8, "run with XLA_FLAGS=--xla_force_host_platform_device_count=8"
    config = _config(tiny_shards, tmp_path, NO_DROPOUT)
    full = _one_step(config, jax.devices()[:1])
    _assert_same(full, _one_step(config, jax.devices(), micro=8))  # 2 micro-batches of 1 row per device


def test_with_dropout_the_rng_state_advances_as_in_the_full_batch_step(tiny_shards, tmp_path):
    config = _config(tiny_shards, tmp_path, "model.text.dropout=0.1")
    devices = jax.devices()[:1]
    _, _, rest_before = split_model(build_model(config.model, seed=0)[0])
    loss_a, _, rest_a = _one_step(config, devices)
    loss_b, _, rest_b = _one_step(config, devices, micro=4)
    assert any(not np.array_equal(rest_a[k], rest_before[k]) for k in rest_a)  # dropout drew numbers
    for key in rest_a:  # a resumed run continues from the same RNG state either way
        np.testing.assert_array_equal(rest_b[key], rest_a[key], err_msg=key)
    assert np.isfinite(loss_b) and loss_b == pytest.approx(loss_a, rel=0.05)  # other masks, same loss scale


def test_micro_batch_size_must_divide_the_batch_and_spread_over_the_devices(tiny_shards, tmp_path):
    with pytest.raises(ClipitError, match=r"train\.micro_batch_size 5 does not divide train\.batch_size 16"):
        _config(tiny_shards, tmp_path, "train.micro_batch_size=5")
    config = _config(tiny_shards, tmp_path, "train.micro_batch_size=4")
    check_micro_batch_size(config.train, data_mesh(jax.devices()[:4]))
    with pytest.raises(ClipitError, match=r"train\.micro_batch_size 4 is not divisible by the 8 devices"):
        check_micro_batch_size(config.train, data_mesh(jax.devices()[:8]))


def _cli_train(shards, out, *extra):
    args = ["--config", "tiny"]
    for item in tiny_overrides(
        shards, out, tiny_phases(heads=2, full=3), "train.log_every=1", "train.export=false"
    ):
        args += ["--set", item]
    for item in extra:
        args += ["--set", item]
    result = CliRunner().invoke(app, [*args, "train"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [line for line in lines if line.get("split") == "train"]


def test_cli_run_with_micro_batches_gives_the_same_losses_and_weights(tiny_shards, tmp_path):
    full = _cli_train(tiny_shards, tmp_path / "full")
    micro = _cli_train(tiny_shards, tmp_path / "micro", "train.micro_batch_size=8")
    assert [line["step"] for line in micro] == [line["step"] for line in full] == [1, 2, 3, 4, 5]
    for a, b in zip(full, micro, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-3), a["step"]
    weights_full, weights_micro = params_at(tmp_path / "full", 5), params_at(tmp_path / "micro", 5)
    for key in weights_full:
        if key.endswith("key/bias"):  # true gradient 0: Adam scales its rounding noise to a full step
            continue
        np.testing.assert_allclose(weights_micro[key], weights_full[key], rtol=1e-3, atol=1e-5, err_msg=key)


def test_each_micro_batch_reuses_its_dropout_masks_in_the_gradient_pass():
    """With dropout, pass 3 must see the masks pass 1 drew: the gradient then equals autograd's."""
    rows, width, micro = 16, 8, 4
    rng = np.random.default_rng(0)
    batch = {"x": jnp.asarray(rng.normal(size=(rows, width)), jnp.float32), "caption_id": jnp.arange(rows)}
    params = {"w": jnp.asarray(rng.normal(size=(width, width)), jnp.float32), "scale": jnp.asarray(3.0)}
    rest = {"key": jax.random.key_data(jax.random.key(7)), "count": jnp.zeros((), jnp.int32)}

    def encode(p, r, rows_):
        kept = jax.random.bernoulli(jax.random.wrap_key_data(r["key"]), 0.5, rows_["x"].shape)
        h = jnp.where(kept, rows_["x"] @ p["w"], 0.0)  # dropout drawn from the RNG state
        return (h, jnp.tanh(h)), {**r, "count": r["count"] + 1}

    def head(p, embeddings, rows_):
        return infonce_like(p["scale"], *embeddings), p["scale"]

    def infonce_like(scale, a, b):
        logits = scale * a @ b.T
        return -jnp.mean(jnp.diag(jax.nn.log_softmax(logits, axis=1)))

    def reference(p):  # micro-batch i encoded with the keys folded with i, then one loss over all
        parts = []
        for i in range(rows // micro):
            key = jax.random.key_data(jax.random.fold_in(jax.random.wrap_key_data(rest["key"]), i))
            parts.append(encode(p, {**rest, "key": key}, {"x": batch["x"][i * micro : (i + 1) * micro]})[0])
        return head(p, tuple(jnp.concatenate(e) for e in zip(*parts, strict=True)), batch)[0]

    (loss, (_, new_rest)), grads = jax.jit(
        lambda p: gradcache.value_and_grad(
            encode,
            head,
            p,
            rest,
            batch,
            micro_batch_size=micro,
            mesh=data_mesh(jax.devices()[:1]),
            key_names={"key"},
        )
    )(params)
    want_loss, want_grads = jax.value_and_grad(reference)(params)
    assert float(loss) == pytest.approx(float(want_loss), rel=1e-6)
    for key in params:
        np.testing.assert_allclose(grads[key], want_grads[key], rtol=1e-5, atol=1e-6, err_msg=key)
    np.testing.assert_array_equal(new_rest["key"], rest["key"])  # keys restored, counter advanced once
    assert int(new_rest["count"]) == 1


def test_a_run_resumes_with_another_micro_batch_size(tiny_shards, tmp_path):
    from clipit.config import save_resolved
    from clipit.train.run_config import check_resume, run_config

    saved = run_config(_config(tiny_shards, tmp_path))
    save_resolved(saved, tmp_path)
    check_resume(run_config(_config(tiny_shards, tmp_path, "train.micro_batch_size=4")), tmp_path)  # accepted
    with pytest.raises(ClipitError, match=r"train\.batch_size"):  # while the batch itself stays fixed
        check_resume(run_config(_config(tiny_shards, tmp_path, "train.batch_size=32")), tmp_path)
