"""Validation is never skipped in silence: a small val split is validated, an empty one is named once."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from clipit.models.build import build_model
from clipit.runs.metrics import read_metrics
from clipit.train.loop import train_and_evaluate
from clipit.train.mesh import data_mesh, put_replicated
from clipit.train.model_state import split_model
from clipit.train.run_tokenizer import load_run_tokenizer
from clipit.train.state import TrainState
from clipit.train.step import init_loss_params, make_eval_step
from clipit.train.validation import Validation, image_ids, validation_batch_size
from tests.support.tiny_train import tiny_config, tiny_phases, write_synthetic_shards


def test_validation_batch_size():
    assert validation_batch_size(500, 128, 8) == 128  # enough rows: the training batch
    assert validation_batch_size(100, 128, 8) == 96  # fewer: the most rows the 8 devices split evenly
    assert validation_batch_size(100, 128, 1) == 100
    assert validation_batch_size(5, 128, 8) == 0  # not even one row per device


def _run(tmp_path, val_rows: int):
    shards = write_synthetic_shards(tmp_path / "shards", train=32, val=val_rows)
    config = tiny_config(
        shards, tmp_path / "run", tiny_phases(heads=2, full=2), "train.eval_every=1", "train.export=false"
    )
    summary = train_and_evaluate(config, devices=jax.devices()[:1])
    return summary, [r for r in read_metrics(tmp_path / "run") if r["split"] == "val"]


def test_fewer_val_rows_than_the_batch_are_validated_as_one_smaller_batch(tmp_path, capfd):
    summary, val = _run(tmp_path, val_rows=6)  # train.batch_size is 16
    assert [r["step"] for r in val] == [1, 2, 3, 4]  # every evaluation, none skipped
    assert all(0.0 <= r["i2t_r@1"] <= 1.0 and r["loss"] > 0 for r in val)
    assert summary["val"]["step"] == 4
    err = capfd.readouterr().err
    assert err.count("validating on one batch of 6 rows") == 1  # said once per run, not per evaluation


def test_no_val_rows_says_no_validation_once(tmp_path, capfd):
    summary, val = _run(tmp_path, val_rows=0)
    assert val == [] and summary["val"] is None
    assert capfd.readouterr().err.count("no validation:") == 1


def test_rows_of_one_image_get_one_id():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(5, 8, 8, 3), dtype=np.uint8)
    pixels[3] = pixels[1]  # the same image with another caption
    ids = image_ids(pixels)
    assert ids[3] == ids[1] and len(set(ids.tolist())) == 4


@pytest.mark.parametrize("val_batches", [2, 4])  # part of the val split (4 batches), and all of it
def test_the_validation_loader_is_built_once_and_every_pass_sees_the_same_batches(
    tiny_shards, tmp_path, val_batches
):
    config = tiny_config(tiny_shards, tmp_path / "run", f"train.val_batches={val_batches}")
    model, info = build_model(config.model, seed=0)
    tokenizer, _ = load_run_tokenizer(config, info.tokenizer, model.text_sizes.vocab_size)
    parts, params, rest = split_model(model)
    mesh = data_mesh(jax.devices()[:1])
    state = put_replicated(mesh, TrainState.create(params, rest, init_loss_params(config.train)))
    eval_step = make_eval_step(parts, config.train, mesh)

    def passes(count: int) -> list[dict]:
        validation = Validation(config, tiny_shards, tokenizer, mesh)
        loader = validation.loader
        try:
            results = [validation.run(eval_step, state) for _ in range(count)]
        finally:
            validation.close()
        assert validation.loader is loader  # one loader for every pass
        return results

    first, second, third = passes(3)
    assert first is not None and first == second == third
    (fresh,) = passes(1)
    assert fresh == first  # the same numbers as a loader built for this pass alone
