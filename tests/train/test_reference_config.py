"""configs/clip-italian.toml, scaled down in size only, trains through both of its phases.

The real run needs ViT-B/32, an Italian BERT and 1.4M pairs; here the two `pretrained` hub ids become
tiny checkpoints made with transformers' PyTorch classes (a full CLIPModel, a BertModel with its
tokenizer), and the sizes shrink (32 px, 24 tokens, batch 16, 64 synthetic pairs, no loader workers).
Everything the config chooses stays: CLIP's projection reused, both towers frozen in phase 1, AdaBelief
with adaptive clipping, a new warmup per phase, phases measured in epochs, bf16 compute over float32
parameters, multi-positive InfoNCE with a learnable logit scale, augmentation with flips and colour
jitter, BERT dropout. `clipit train` runs it as a user would, and the export loads in transformers.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import tomli_w
from safetensors import safe_open
from typer.testing import CliRunner

from clipit.cli.main import app
from clipit.config import load_config
from clipit.models.build import build_model
from clipit.runs.metrics import read_metrics
from clipit.train.model_state import split_model
from tests.support import tiny_hf
from tests.support.tiny_train import SIDE, params_at, write_synthetic_shards

ROOT = Path(__file__).resolve().parents[2]
TRAIN_PAIRS, BATCH = 64, 16


def scaled_down(config: dict, *, clip: Path, bert: Path, shards: Path, out: Path) -> dict:
    config["model"]["vision"].update(pretrained=str(clip), image_size=SIDE)
    config["model"]["text"]["pretrained"] = str(bert)
    config["model"].update(max_text_length=24, projection_dim=tiny_hf.PROJECTION_DIM)
    config["data"]["loader"].update(workers=0, prefetch=1)
    config["train"].update(
        data=str(shards), out=str(out), batch_size=BATCH, log_every=1, eval_every=8, val_batches=1,
        checkpoint_every=8, keep_checkpoints=10,
    )  # fmt: skip
    return config


def test_reference_config_trains_both_phases_from_pretrained_checkpoints(tmp_path):
    text = (ROOT / "configs" / "clip-italian.toml").read_text()
    assert text == (ROOT / "clipit" / "configs" / "clip-italian.toml").read_text()  # the packaged copy
    reference = tomllib.loads(text)
    heads, full = reference["train"]["phases"]
    assert reference["model"]["dtype"] == "bfloat16" and heads["trainable"] != [".*"] == full["trainable"]

    clip = tiny_hf.save_tiny_clip(tmp_path / "clip")
    bert = tiny_hf.save_tiny_bert(tmp_path / "bert")
    shards = write_synthetic_shards(tmp_path / "shards", train=TRAIN_PAIRS, val=BATCH)
    out = tmp_path / "run"
    config = tmp_path / "clip-italian-small.toml"
    config.write_text(tomli_w.dumps(scaled_down(reference, clip=clip, bert=bert, shards=shards, out=out)))

    result = CliRunner().invoke(app, ["--config", str(config), "train"])
    assert result.exit_code == 0, result.output

    steps_per_epoch = TRAIN_PAIRS // BATCH
    heads_steps, full_steps = heads["epochs"] * steps_per_epoch, full["epochs"] * steps_per_epoch
    train = [r for r in read_metrics(out) if r["split"] == "train"]
    assert [r["phase"] for r in train] == ["heads"] * heads_steps + ["all"] * full_steps
    assert all(np.isfinite(r["loss"]) and np.isfinite(r["grad_norm"]) for r in train)
    # each phase warms up from zero to its own peak
    assert train[0]["lr"] < heads["lr"] and train[heads_steps]["lr"] < full["lr"]

    # phase 1 leaves the pretrained towers as loaded and trains the heads; phase 2 moves everything
    initial = {
        k: np.asarray(v)
        for k, v in split_model(build_model(load_config(out / "config.resolved.toml").model)[0])[1].items()
    }
    after_heads, final = params_at(out, heads_steps), params_at(out, heads_steps + full_steps)
    towers = [k for k in initial if k.startswith(("vision_model/", "text_model/"))]
    assert towers and all(np.array_equal(initial[k], after_heads[k]) for k in towers)
    assert not np.array_equal(initial["text_projection/kernel"], after_heads["text_projection/kernel"])
    assert all(not np.array_equal(after_heads[k], final[k]) for k in towers)
    assert all(value.dtype == np.float32 for value in final.values())  # bf16 compute, float32 parameters
    # the loaded towers are the checkpoints' (CLIP's own projection included), not a random init
    with safe_open(clip / "model.safetensors", "np") as weights:
        np.testing.assert_array_equal(
            initial["visual_projection/kernel"], weights.get_tensor("visual_projection.weight").T
        )
    with safe_open(bert / "model.safetensors", "np") as weights:
        embeddings = weights.get_tensor("embeddings.word_embeddings.weight")
    np.testing.assert_array_equal(initial["text_model/embeddings/word_embeddings/embedding"], embeddings)

    from transformers import VisionTextDualEncoderModel

    _, info = VisionTextDualEncoderModel.from_pretrained(out / "export", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
