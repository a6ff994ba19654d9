"""Tiny random HF checkpoints shared by the model tests (built once per test session)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flax import nnx

from tests.support import tiny_hf

SENTENCES = ["una foto di un gatto rosso", "tre cerchi verdi e una stella gialla su sfondo bianco", "cane"]


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("tiny_hf")
    return {
        "clip_vision": tiny_hf.save_tiny_clip_vision(root / "clip_vision", seed=1),
        "clip": tiny_hf.save_tiny_clip(root / "clip", seed=2),
        "bert": tiny_hf.save_tiny_bert(root / "bert", seed=3),
        "dual": tiny_hf.save_tiny_dual_encoder(root / "dual", seed=4),
    }


@pytest.fixture(scope="session")
def pixels() -> np.ndarray:
    """Two normalised-looking NHWC images at the tiny image size."""
    return (
        np.random.default_rng(0)
        .standard_normal((2, tiny_hf.IMAGE_SIZE, tiny_hf.IMAGE_SIZE, 3))
        .astype(np.float32)
    )


def to_torch_image(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)))


def tokens(folder, max_length: int = 16) -> dict[str, np.ndarray]:
    """SENTENCES tokenised with the checkpoint's own tokenizer, padded (so masks matter)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    batch = tokenizer(
        SENTENCES, padding="max_length", truncation=True, max_length=max_length, return_tensors="np"
    )
    assert (batch["attention_mask"] == 0).any(), "the test needs padded rows"
    return {
        "input_ids": batch["input_ids"].astype(np.int32),
        "attention_mask": batch["attention_mask"].astype(np.int32),
    }


def pooled(output) -> np.ndarray:
    """transformers 5 returns an output object from get_*_features; 4.x returned the tensor."""
    tensor = output.pooler_output if hasattr(output, "pooler_output") else output
    return tensor.detach().numpy()


def tiny_model_config(**overrides):
    """A `[model]` section with tiny random towers (the defaults are BERT-base sized)."""
    from clipit.config import ModelConfig

    values = {
        "vision": {
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 64,
            "patch_size": 8,
            "image_size": tiny_hf.IMAGE_SIZE,
        },
        "text": {
            "vocab_size": len(tiny_hf.italian_vocab()),
            "hidden_size": 48,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 96,
            "max_position_embeddings": tiny_hf.MAX_POSITIONS,
        },
        "projection_dim": tiny_hf.PROJECTION_DIM,
    }
    for key, value in overrides.items():
        if isinstance(value, dict):
            values[key] = {**values.get(key, {}), **value}
        else:
            values[key] = value
    return ModelConfig(**values)


@nnx.jit
def features(model, pixels, input_ids, attention_mask) -> dict:
    """Every output of the DualEncoder API in one jitted call.

    Jitted because eager (op-by-op) execution compiles each op separately, which is slow on a busy
    2-core machine; tiny models of the same sizes share one compiled function.
    """
    image = model.image_features(pixels)
    text = model.text_features(input_ids, attention_mask)
    return {
        "image_pooled": image,
        "text_pooled": text,
        "text_hidden": model.text_model.encode(input_ids, attention_mask),
        "image": model.project_image(image),
        "text": model.project_text(text),
        "image_unit": model.encode_image(pixels),
        "text_unit": model.encode_text(input_ids, attention_mask),
    }


def run_features(model, pixels: np.ndarray, batch: dict) -> dict[str, np.ndarray]:
    out = features(model, pixels, batch["input_ids"], batch["attention_mask"])
    return {k: np.asarray(v) for k, v in out.items()}
