"""One tiny two-phase run (in process, one device), checked from every side.

The run: 4 heads-only steps, then 150 steps training everything, on 256 one-object
synthetic pairs at 32 px. Compiling dominates its time; the steps themselves take seconds.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from clipit.models.build import build_model
from clipit.runs.metrics import read_metrics
from clipit.runs.model import load_run_model
from clipit.train.model_state import split_model
from tests.support.tiny_train import FULL, HEADS
from tests.support.tiny_train import params_at as _params_at


def test_the_run_learns(tiny_run):
    _, _, summary = tiny_run
    val = [r for r in read_metrics(tiny_run[0]) if r["split"] == "val"]
    assert summary["steps"] == HEADS + FULL
    assert val[-1]["step"] == HEADS + FULL
    assert val[-1]["loss"] < val[0]["loss"] - 0.3
    chance = 1 / 16  # in-batch R@1 of a random model (batch 16)
    assert (val[-1]["i2t_r@1"] + val[-1]["t2i_r@1"]) / 2 > 2.5 * chance


def test_metrics_lines_name_phase_step_and_split(tiny_run):
    run_dir = tiny_run[0]
    rows = read_metrics(run_dir)
    train = [r for r in rows if r["split"] == "train"]
    assert [r["step"] for r in train] == list(range(1, HEADS + FULL + 1))
    assert {r["phase"] for r in train[:HEADS]} == {"heads"} and {r["phase"] for r in train[HEADS:]} == {"all"}
    for key in ("loss", "lr", "logit_scale", "grad_norm", "samples_per_s", "data_wait_fraction"):
        assert all(np.isfinite(r[key]) for r in train), key
    warmup = round(0.1 * FULL)  # phase 2 starts its own linear warmup, then the cosine
    assert train[HEADS]["lr"] == pytest.approx(2e-3 / warmup, rel=1e-5)
    assert train[HEADS + warmup - 1]["lr"] == pytest.approx(2e-3, rel=1e-5)
    assert train[-1]["lr"] == pytest.approx(0.0, abs=1e-5)  # cosine to 0
    assert {"i2t_r@1", "t2i_r@5"} <= set(next(r for r in rows if r["split"] == "val"))
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert (run_dir / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert (run_dir / "config.resolved.toml").is_file()


def test_heads_phase_leaves_towers_bit_identical_and_full_phase_changes_them(tiny_run):
    run_dir, config, _ = tiny_run
    initial = {
        k: np.asarray(v)
        for k, v in split_model(build_model(config.model, seed=config.train.seed)[0])[1].items()
    }
    after_heads = _params_at(run_dir, HEADS)
    final = _params_at(run_dir, HEADS + FULL)
    towers = [k for k in initial if k.startswith(("vision_model/", "text_model/"))]
    heads = ["visual_projection/kernel", "text_projection/kernel", "logit_scale"]
    assert towers and all(np.array_equal(initial[k], after_heads[k]) for k in towers)
    assert all(not np.array_equal(initial[k], after_heads[k]) for k in heads)
    changed = [k for k in towers if not np.array_equal(after_heads[k], final[k])]
    assert len(changed) == len(towers)


def test_load_run_model_restores_the_latest_checkpoint(tiny_run):
    run_dir = tiny_run[0]
    model, model_cfg, tokenizer = load_run_model(run_dir)
    final = _params_at(run_dir, HEADS + FULL)
    restored = split_model(model)[1]
    assert all(np.array_equal(np.asarray(restored[k]), final[k]) for k in final)
    assert model_cfg.projection_dim == 16 and tokenizer.endswith("tokenizer")


def test_export_loads_in_transformers_with_the_same_embeddings(tiny_run, tiny_shards):
    torch = pytest.importorskip("torch")
    from transformers import VisionTextDualEncoderModel

    run_dir, _, summary = tiny_run
    hf, info = VisionTextDualEncoderModel.from_pretrained(summary["export"], output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    model, _, _ = load_run_model(run_dir)
    pixels = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)
    ours = np.asarray(model.encode_image(pixels))
    with torch.no_grad():
        theirs = hf.get_image_features(pixel_values=torch.from_numpy(pixels.transpose(0, 3, 1, 2)))
    theirs = theirs.pooler_output if hasattr(theirs, "pooler_output") else theirs
    theirs = theirs.numpy() / np.linalg.norm(theirs.numpy(), axis=1, keepdims=True)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    assert (
        json.loads((run_dir / "export" / "config.json").read_text())["model_type"]
        == "vision-text-dual-encoder"
    )
