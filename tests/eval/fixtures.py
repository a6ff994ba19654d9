"""Shared by the eval, embed and search tests: a tiny real checkpoint, images, and a reference encoder.

The reference is transformers' PyTorch VisionTextDualEncoderModel with its own CLIPImageProcessor and
tokenizer: what clipit's encoder must reproduce.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tests.support import tiny_hf

# Sizes chosen to exercise the resize + centre crop both ways (portrait, landscape, square, odd).
IMAGE_SHAPES = [(40, 30), (32, 32), (50, 80), (64, 64), (33, 47), (90, 41)]


def write_images(folder: Path, shapes=IMAGE_SHAPES, *, seed: int = 0, prefix: str = "img") -> list[Path]:
    """Random-noise images (PNG and JPEG alternately); returns their paths in the order written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (width, height) in enumerate(shapes):
        path = folder / f"{prefix}{i:02d}.{'png' if i % 2 == 0 else 'jpg'}"
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def write_corrupt(path: Path) -> Path:
    """A file that claims to be a JPEG (magic bytes) and is not."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return path


def make_tiny_model(folder: Path, seed: int = 4) -> Path:
    return tiny_hf.save_tiny_dual_encoder(folder, seed=seed)


class TorchReference:
    """The PyTorch model's normalised features, computed the way transformers' users compute them."""

    def __init__(self, model_dir: Path):
        from transformers import AutoTokenizer, CLIPImageProcessor, VisionTextDualEncoderModel

        self.model = VisionTextDualEncoderModel.from_pretrained(model_dir).eval()
        self.processor = CLIPImageProcessor.from_pretrained(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)

    def images(self, paths: list[Path]) -> np.ndarray:
        pixels = self.processor([Image.open(p).convert("RGB") for p in paths], return_tensors="pt")[
            "pixel_values"
        ]
        with torch.no_grad():
            return _normalised(self.model.get_image_features(pixel_values=pixels))

    def texts(self, texts: list[str]) -> np.ndarray:
        batch = self.tokenizer(texts, padding=True, return_tensors="pt")
        with torch.no_grad():
            return _normalised(
                self.model.get_text_features(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                )
            )


def _normalised(output) -> np.ndarray:
    tensor = output.pooler_output if hasattr(output, "pooler_output") else output  # transformers 5 vs 4
    return torch.nn.functional.normalize(tensor, dim=-1).numpy()
