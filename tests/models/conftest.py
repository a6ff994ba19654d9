"""Tiny random HF checkpoints and pixels shared by the model tests (built once per test session)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support import tiny_hf


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
