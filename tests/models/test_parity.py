"""Our Flax towers against transformers' PyTorch models on the same weights and inputs (fp32, 1e-5)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import torch
from transformers import BertModel, CLIPModel, CLIPVisionModel, VisionTextDualEncoderModel

from clipit.models import build_model, load_dual_encoder
from tests.support.tiny_hf import model_config as tiny_model_config
from tests.support.tower_io import pooled, run_features, to_torch_image, tokens

TOLERANCE = 1e-5


def max_diff(ours, reference) -> float:
    return float(np.max(np.abs(np.asarray(ours, dtype=np.float32) - np.asarray(reference))))


def test_vision_tower_matches_clip_vision_model(checkpoints, pixels):
    model, info = build_model(tiny_model_config(vision={"pretrained": str(checkpoints["clip_vision"])}))
    reference = CLIPVisionModel.from_pretrained(checkpoints["clip_vision"]).eval()
    with torch.no_grad():
        expected = reference(pixel_values=to_torch_image(pixels)).pooler_output.numpy()
    ours = run_features(model, pixels, tokens(checkpoints["bert"]))
    assert "clip_vision_model" in info.vision
    assert max_diff(ours["image_pooled"], expected) <= TOLERANCE


def test_clip_checkpoint_gives_clip_image_features(checkpoints, pixels):
    """Vision tower + CLIP's own visual projection = CLIPModel.get_image_features."""
    model, info = build_model(tiny_model_config(vision={"pretrained": str(checkpoints["clip"])}))
    reference = CLIPModel.from_pretrained(checkpoints["clip"]).eval()
    with torch.no_grad():
        expected = pooled(reference.get_image_features(pixel_values=to_torch_image(pixels)))
    ours = run_features(model, pixels, tokens(checkpoints["bert"]))
    assert "visual projection from" in info.projections
    assert max_diff(ours["image"], expected) <= TOLERANCE


def test_bert_matches_bert_model_with_padding(checkpoints, pixels):
    model, _ = build_model(tiny_model_config(text={"pretrained": str(checkpoints["bert"])}))
    batch = tokens(checkpoints["bert"])
    reference = BertModel.from_pretrained(checkpoints["bert"]).eval()
    with torch.no_grad():
        out = reference(
            input_ids=torch.from_numpy(batch["input_ids"]).long(),
            attention_mask=torch.from_numpy(batch["attention_mask"]).long(),
        )
    ours = run_features(model, pixels, batch)
    real = batch["attention_mask"].astype(bool)
    assert max_diff(ours["text_hidden"][real], out.last_hidden_state.numpy()[real]) <= TOLERANCE
    assert max_diff(ours["text_pooled"], out.pooler_output.numpy()) <= TOLERANCE


def test_padding_does_not_change_text_features(checkpoints, pixels):
    model, _ = build_model(tiny_model_config(text={"pretrained": str(checkpoints["bert"])}))
    short, long = tokens(checkpoints["bert"], max_length=16), tokens(checkpoints["bert"], max_length=40)
    unmasked = {**long, "attention_mask": np.ones_like(long["attention_mask"])}  # attends to padding
    a = run_features(model, pixels, short)["text_pooled"]
    b = run_features(model, pixels, long)["text_pooled"]
    c = run_features(model, pixels, unmasked)["text_pooled"]
    assert max_diff(a, b) <= TOLERANCE
    assert max_diff(c, b) > 1e-3


def test_dual_encoder_matches_vision_text_dual_encoder(checkpoints, pixels):
    model, folder = load_dual_encoder(checkpoints["dual"])
    reference = VisionTextDualEncoderModel.from_pretrained(folder).eval()
    batch = tokens(folder)
    ids, mask = (torch.from_numpy(batch[k]).long() for k in ("input_ids", "attention_mask"))
    with torch.no_grad():
        image = pooled(reference.get_image_features(pixel_values=to_torch_image(pixels)))
        text = pooled(reference.get_text_features(input_ids=ids, attention_mask=mask))
    ours = run_features(model, pixels, batch)
    assert max_diff(ours["image"], image) <= TOLERANCE
    assert max_diff(ours["text"], text) <= TOLERANCE
    assert abs(float(model.logit_scale[...]) - reference.logit_scale.item()) <= 1e-6
    unit_image = image / np.linalg.norm(image, axis=-1, keepdims=True)
    unit_text = text / np.linalg.norm(text, axis=-1, keepdims=True)
    assert max_diff(ours["image_unit"], unit_image) <= TOLERANCE
    assert max_diff(ours["text_unit"], unit_text) <= TOLERANCE


def test_bfloat16_compute_is_close_and_keeps_float32_params(checkpoints, pixels):
    full, _ = load_dual_encoder(checkpoints["dual"])
    half, _ = load_dual_encoder(checkpoints["dual"], dtype=jnp.bfloat16)
    assert half.visual_projection.kernel[...].dtype == jnp.float32
    batch = tokens(checkpoints["dual"])
    out_32, out_16 = run_features(full, pixels, batch), run_features(half, pixels, batch)
    assert out_16["image_pooled"].dtype == jnp.bfloat16
    assert out_16["image_unit"].dtype == np.float32
    for kind in ("image_unit", "text_unit"):
        # unit vectors: cosine similarity of the fp32 and bf16 embeddings of the same input
        assert np.min(np.sum(out_32[kind] * out_16[kind], axis=-1)) > 0.99
        assert max_diff(out_16[kind], out_32[kind]) > 0  # it did compute in lower precision
