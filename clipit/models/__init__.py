"""The model: CLIP ViT image tower + BERT text tower in Flax NNX, HF weights in and out.

The names below are imported on first use, so that light modules of this package (`sizes`, `pixels`,
`hub`) can be used by the config and data layers without loading jax and flax.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "BuildInfo": "clipit.models.build",
    "build_model": "clipit.models.build",
    "load_dual_encoder": "clipit.models.build",
    "DualEncoder": "clipit.models.dual_encoder",
    "l2_normalize": "clipit.models.normalize",
    "export_hf": "clipit.models.export",
    "kernels_for": "clipit.models.kernels",
    "TextSizes": "clipit.models.sizes",
    "VisionSizes": "clipit.models.sizes",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'clipit.models' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
