"""Weights out: a DualEncoder as an HF VisionTextDualEncoder folder.

transformers' PyTorch `VisionTextDualEncoderModel.from_pretrained` loads the folder with no missing or
unexpected keys, and `AutoTokenizer` / `VisionTextDualEncoderProcessor` load from it. The folder is
written beside its target under a temporary name and renamed into place, so a crash never leaves half
an export where a good one was.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from flax import nnx

from clipit import atomic
from clipit.errors import ModelError
from clipit.models import hf_keys, pixels
from clipit.models.dual_encoder import DualEncoder

CLIP_MEAN = list(pixels.CLIP_MEAN)  # lists: as preprocessor_config.json holds them
CLIP_STD = list(pixels.CLIP_STD)
BICUBIC = 3  # PIL.Image.BICUBIC, the resample code transformers stores


def export_hf(
    model: DualEncoder,
    out_dir: str | Path,
    *,
    tokenizer_dir: str | Path,
    image_size: int | None = None,
    text_length: int | None = None,
    card: str | None = None,
) -> Path:
    """Write `out_dir` (replacing an earlier export there); returns it.

    `text_length` is the token length the model was trained with (default: its position embeddings),
    saved as the tokenizer's `model_max_length` so that `truncation=True` cuts long captions there;
    `card` is the README.md (model card) written beside the weights.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not _replaceable(out_dir):
        raise ModelError(
            f"{out_dir}: exists and is not an earlier export (no config.json)",
            hint="choose a new --out folder or remove that one",
        )
    with atomic.atomic_folder(
        out_dir
    ) as staging:  # an earlier export is replaced only once this one is whole
        _write_config(model, staging)
        _write_weights(model, staging / "model.safetensors")
        _write_tokenizer(tokenizer_dir, staging, text_length or model.text_sizes.max_position_embeddings)
        if card is not None:
            (staging / "README.md").write_text(card, encoding="utf-8")
        _write_preprocessor(image_size or model.vision_sizes.image_size, staging)
    return out_dir


def hf_state_dict(model: DualEncoder) -> dict[str, np.ndarray]:
    """Every parameter under its HF name and in HF's layout (float32)."""
    tensors = {}
    for path, variable in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        key, transform = hf_keys.hf_key("/".join(str(p) for p in path))
        tensors[key] = hf_keys.to_hf(np.asarray(variable.get_value(), dtype=np.float32), transform)
    return tensors


def _write_config(model: DualEncoder, folder: Path) -> None:
    config = {
        "architectures": ["VisionTextDualEncoderModel"],
        "model_type": "vision-text-dual-encoder",
        "projection_dim": model.projection_dim,
        "logit_scale_init_value": float(model.logit_scale[...]),
        "vision_config": model.vision_sizes.to_hf(model.projection_dim),
        "text_config": model.text_sizes.to_hf(),
        "dtype": "float32",
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _write_weights(model: DualEncoder, path: Path) -> None:
    from safetensors.numpy import save_file

    save_file(hf_state_dict(model), str(path), metadata={"format": "pt"})  # transformers requires "pt"
    atomic.follow_umask(path)


def _write_tokenizer(tokenizer_dir: str | Path, folder: Path, max_length: int) -> None:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"{tokenizer_dir}: no tokenizer can be loaded from it ({' '.join(str(exc).split())[:200]})",
            hint="set model.tokenizer to the text tower's checkpoint folder",
        ) from exc
    # A folder of vocab files alone loads with model_max_length 1e30 (no limit): transformers then
    # passes a long caption's every token to position embeddings that end at max_length.
    tokenizer.model_max_length = max_length
    tokenizer.save_pretrained(str(folder))


def _write_preprocessor(image_size: int, folder: Path) -> None:
    config = {
        "image_processor_type": "CLIPImageProcessor",
        "do_resize": True,
        "size": {"shortest_edge": image_size},
        "resample": BICUBIC,
        "do_center_crop": True,
        "crop_size": {"height": image_size, "width": image_size},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": CLIP_MEAN,
        "image_std": CLIP_STD,
        "do_convert_rgb": True,
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(config, indent=2) + "\n")


def _replaceable(folder: Path) -> bool:
    return folder.is_dir() and (not any(folder.iterdir()) or (folder / "config.json").exists())
