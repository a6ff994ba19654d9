"""Weights out: the exported folder is a VisionTextDualEncoder that transformers loads and agrees with."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from transformers import AutoTokenizer, VisionTextDualEncoderModel, VisionTextDualEncoderProcessor

from clipit.errors import ModelError
from clipit.models import build_model, export_hf, load_dual_encoder
from clipit.models.export import CLIP_MEAN, CLIP_STD, hf_state_dict
from tests.support.tiny_hf import model_config as tiny_model_config
from tests.support.tower_io import pooled, run_features, to_torch_image, tokens


@pytest.fixture(scope="module")
def exported(checkpoints, tmp_path_factory):
    """A freshly initialised model (what the trainer exports) with the tiny Italian BERT tokenizer."""
    model, _ = build_model(tiny_model_config(logit_scale_init=2.0), seed=3)
    out = export_hf(model, tmp_path_factory.mktemp("export") / "model", tokenizer_dir=checkpoints["bert"])
    return model, out


def test_transformers_loads_the_export_with_no_missing_or_unexpected_keys(exported, pixels):
    model, out = exported
    reference, loading = VisionTextDualEncoderModel.from_pretrained(out, output_loading_info=True)
    assert loading["missing_keys"] == set() and loading["unexpected_keys"] == set()
    assert loading["mismatched_keys"] == set()
    batch = tokens(out)
    with torch.no_grad():
        image = pooled(reference.eval().get_image_features(pixel_values=to_torch_image(pixels)))
        text = pooled(
            reference.get_text_features(
                input_ids=torch.from_numpy(batch["input_ids"]).long(),
                attention_mask=torch.from_numpy(batch["attention_mask"]).long(),
            )
        )
    ours = run_features(model, pixels, batch)
    assert np.max(np.abs(ours["image"] - image)) <= 1e-5
    assert np.max(np.abs(ours["text"] - text)) <= 1e-5
    assert reference.logit_scale.item() == pytest.approx(2.0)


def test_export_files_follow_the_hf_format(exported):
    _, out = exported
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "vision-text-dual-encoder"
    assert config["projection_dim"] == 16 and config["logit_scale_init_value"] == pytest.approx(2.0)
    assert config["vision_config"]["model_type"] == "clip_vision_model"
    assert config["vision_config"]["hidden_size"] == 32 and config["vision_config"]["patch_size"] == 8
    assert config["text_config"]["model_type"] == "bert" and config["text_config"]["hidden_size"] == 48
    with safe_open(str(out / "model.safetensors"), framework="np") as f:
        assert f.metadata() == {"format": "pt"}
        keys = set(f.keys())
        assert f.get_tensor("logit_scale").shape == ()
    vision = {k for k in keys if k.startswith("vision_model.")}
    assert vision and all(k.startswith("vision_model.vision_model.") for k in vision)
    assert "vision_model.vision_model.pre_layrnorm.weight" in keys
    assert "text_model.pooler.dense.weight" in keys and "visual_projection.bias" not in keys
    preprocessor = json.loads((out / "preprocessor_config.json").read_text())
    assert preprocessor["image_mean"] == CLIP_MEAN and preprocessor["image_std"] == CLIP_STD
    assert preprocessor["size"] == {"shortest_edge": 32} and preprocessor["resample"] == 3


def test_tokenizer_and_processor_load_from_the_export(exported):
    _, out = exported
    tokenizer = AutoTokenizer.from_pretrained(out)
    pieces = tokenizer.tokenize("Una foto di un gatto rosso")
    assert pieces == ["una", "foto", "di", "un", "gatto", "rosso"]
    processor = VisionTextDualEncoderProcessor.from_pretrained(out)
    image = Image.fromarray(np.full((40, 60, 3), 255, np.uint8))  # white, not square
    batch = processor(text=["tre cerchi"], images=[image], return_tensors="np", padding=True)
    assert batch["pixel_values"].shape == (1, 3, 32, 32)
    white = (1.0 - np.asarray(CLIP_MEAN)) / np.asarray(CLIP_STD)
    np.testing.assert_allclose(batch["pixel_values"][0, :, 5, 5], white, atol=1e-5)
    assert tokenizer.unk_token_id not in batch["input_ids"][0]


def test_export_round_trips_through_our_loader(exported):
    model, out = exported
    again, folder = load_dual_encoder(out)
    assert folder == out
    before, after = hf_state_dict(model), hf_state_dict(again)
    assert before.keys() == after.keys()
    for key in before:
        np.testing.assert_array_equal(before[key], after[key], err_msg=key)


def test_export_replaces_an_earlier_export_but_not_other_folders(exported, checkpoints, tmp_path):
    model, _ = exported
    target = export_hf(model, tmp_path / "out", tokenizer_dir=checkpoints["bert"])
    (target / "stale.txt").write_text("from the earlier export")
    export_hf(model, target, tokenizer_dir=checkpoints["bert"])
    assert not (target / "stale.txt").exists() and (target / "model.safetensors").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folders left behind

    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(ModelError, match="is not an earlier export"):
        export_hf(model, precious, tokenizer_dir=checkpoints["bert"])
    assert (precious / "notes.txt").read_text() == "keep me"

    with pytest.raises(ModelError, match="no tokenizer can be loaded"):
        export_hf(model, tmp_path / "no_tokenizer", tokenizer_dir=tmp_path / "precious")
    assert not (tmp_path / "no_tokenizer").exists()
