"""What clipit's encoders must reproduce: transformers' PyTorch models run as their users run them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image


def pooled(output) -> torch.Tensor:
    """transformers 5 returns an output object from get_*_features; 4.x returned the tensor."""
    return output.pooler_output if hasattr(output, "pooler_output") else output


class TorchReference:
    """A VisionTextDualEncoder folder's normalised features, with its own CLIPImageProcessor and tokenizer."""

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
    return torch.nn.functional.normalize(pooled(output), dim=-1).numpy()
