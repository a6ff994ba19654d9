"""`clipit export RUN --out DIR [--best | --step N]` as a user runs it: the checkpoint chosen, the files'
permissions, the tokenizer's length limit and the model card."""

from __future__ import annotations

import shlex
import stat
import subprocess
import sys

import jax
import numpy as np
import pytest
import torch
import yaml
from safetensors.numpy import load_file
from transformers import AutoTokenizer, VisionTextDualEncoderModel

from clipit.runs.checkpoints import RunCheckpoints
from tests.support.tiny_train import params_at, tiny_config

CLIPIT = [sys.executable, "-m", "clipit.cli.main"]


def export(*args: str, umask: str = "022") -> subprocess.CompletedProcess:
    command = shlex.join([*CLIPIT, "export", *args])
    return subprocess.run(
        ["sh", "-c", f"umask {umask} && exec {command}"], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def overshooting_run(tiny_shards, tmp_path_factory):
    """A run whose last phase's learning rate is far too high, so its best checkpoint is not its latest."""
    from clipit.train.loop import train_and_evaluate

    out = tmp_path_factory.mktemp("run") / "overshoot"
    config = tiny_config(
        tiny_shards,
        out,
        'train.phases=[{name="heads", steps=4, trainable=["projection", "logit_scale"], lr=2e-3},'
        ' {name="all", steps=80, lr=2e-3, warmup=0.1, reset_optimizer=false},'
        ' {name="overshoot", steps=8, lr=0.5, warmup=0.0}]',
        "train.eval_every=20",
        "train.checkpoint_every=20",
        "model.text.dropout=0.0",
        "train.keep_checkpoints=20",
    )
    train_and_evaluate(config, devices=jax.devices()[:1])
    return out, config


def test_export_best_follows_the_umask_and_carries_length_and_card(overshooting_run, tmp_path):
    run_dir, config = overshooting_run
    checkpoints = RunCheckpoints(run_dir, read_only=True)
    try:
        losses = {s: checkpoints.read_meta(s)["val_loss"] for s in checkpoints.steps()}
    finally:
        checkpoints.close()
    best = min((loss, s) for s, loss in losses.items() if loss is not None)[1]
    assert best != max(losses), "the fixture's best checkpoint should not be its latest"

    out = tmp_path / "models" / "best"
    done = export(str(run_dir), "--out", str(out), "--best", "--license", "apache-2.0", umask="027")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == str(out)

    # the folder and every file follow the umask (0750 / 0640 under umask 027), as other outputs do
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    for path in out.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path.name

    # the weights are the best checkpoint's
    weights = load_file(str(out / "model.safetensors"))
    expected = params_at(run_dir, best)
    np.testing.assert_array_equal(weights["logit_scale"], np.asarray(expected["logit_scale"]).reshape(()))

    # the tokenizer cuts at the model's text length: a long caption does not overflow the positions
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.model_max_length == config.model.max_text_length
    long_caption = " ".join(["un cerchio rosso"] * 40)
    batch = tokenizer([long_caption], truncation=True, return_tensors="pt")
    assert batch["input_ids"].shape[1] == config.model.max_text_length
    model = VisionTextDualEncoderModel.from_pretrained(out).eval()
    with torch.no_grad():
        features = model.get_text_features(**batch)
    features = getattr(features, "pooler_output", features)
    assert features.shape[-1] == config.model.projection_dim

    # the model card: the Hub's YAML header, then the run's own validation metrics at that step
    text = (out / "README.md").read_text()
    _, header, body = text.split("---\n", 2)
    meta = yaml.safe_load(header)
    assert meta["language"] == ["it"] and meta["license"] == "apache-2.0"
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "zero-shot-image-classification"
    assert meta["datasets"] == ["synthetic"]  # the sources of the shards the run trained on
    assert f"step {best}" in body and f"| loss | {losses[best]:.4f} |" in body


def test_export_of_a_step_not_kept_names_the_kept_steps(overshooting_run, tmp_path):
    run_dir, _ = overshooting_run
    done = export(str(run_dir), "--out", str(tmp_path / "m"), "--step", "3")
    assert done.returncode == 2, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    # checkpoints every 20 steps and at each phase's end (4, 84, 92), all kept
    assert len(lines) == 1 and "step 3" in lines[0] and "4, 20, 40, 60, 80, 84, 92" in lines[0], lines
    assert not (tmp_path / "m").exists()
