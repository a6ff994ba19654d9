"""The model: CLIP ViT image tower + BERT text tower in Flax NNX, HF weights in and out."""

from clipit.models.build import BuildInfo, build_model, load_dual_encoder
from clipit.models.dual_encoder import DualEncoder, l2_normalize
from clipit.models.export import export_hf
from clipit.models.sizes import TextSizes, VisionSizes

__all__ = [
    "BuildInfo",
    "DualEncoder",
    "TextSizes",
    "VisionSizes",
    "build_model",
    "export_hf",
    "l2_normalize",
    "load_dual_encoder",
]
