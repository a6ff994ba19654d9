"""Inputs and outputs of the tower parity tests: the same pixels and tokens for clipit and PyTorch, and
every feature a clipit DualEncoder computes, in one jitted call."""

from __future__ import annotations

import numpy as np
import torch
from flax import nnx

from tests.support import torch_reference

SENTENCES = ["una foto di un gatto rosso", "tre cerchi verdi e una stella gialla su sfondo bianco", "cane"]


def to_torch_image(pixels: np.ndarray) -> torch.Tensor:
    """NHWC (clipit) -> NCHW (PyTorch)."""
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
    """A PyTorch get_*_features result as numpy (transformers 5 and 4.x alike)."""
    return torch_reference.pooled(output).detach().numpy()


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
