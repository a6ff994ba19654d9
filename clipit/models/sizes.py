"""Tower sizes: the few HF config.json fields our towers need, read from and written back to HF configs.

Field names are Hugging Face's (CLIPVisionConfig, BertConfig) so a tiny random tower, a `[model]` config
section and a published checkpoint describe the same thing in the same words. The dataclasses are frozen
(hashable): the model modules keep them as static metadata. Their defaults (ViT-B/32 and BERT-base)
are the `[model]` config section's defaults too.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from clipit.errors import ModelError

VISION_ACTIVATIONS = ("quick_gelu", "gelu")  # CLIP uses quick_gelu; some fine-tunes use exact gelu
TEXT_ACTIVATIONS = ("gelu",)  # BERT: exact (erf) gelu
# The initial log of the logit scale: CLIP's log(1 / 0.07) (transformers' `logit_scale_init_value`
# default, 2.6592, is this rounded).
CLIP_LOGIT_SCALE_INIT = math.log(1 / 0.07)


@dataclass(frozen=True)
class VisionSizes:
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    patch_size: int = 32
    image_size: int = 224
    layer_norm_eps: float = 1e-5
    num_channels: int = 3
    attention_dropout: float = 0.0
    hidden_act: str = "quick_gelu"

    @property
    def grid(self) -> int:
        """Patches per side."""
        return self.image_size // self.patch_size

    @classmethod
    def from_hf(cls, config: dict[str, Any], source: str = "config.json") -> VisionSizes:
        sizes = _pick(cls, config, source)
        _check(sizes.hidden_act in VISION_ACTIVATIONS, source, f"hidden_act {sizes.hidden_act!r}")
        _check(sizes.hidden_size % sizes.num_attention_heads == 0, source, "hidden_size/heads")
        _check(sizes.image_size % sizes.patch_size == 0, source, "image_size not a multiple of patch_size")
        return sizes

    def to_hf(self, projection_dim: int) -> dict[str, Any]:
        """The full CLIPVisionConfig dict (what transformers writes as `vision_config`)."""
        from transformers import CLIPVisionConfig

        return CLIPVisionConfig(**asdict(self), projection_dim=projection_dim).to_dict()


@dataclass(frozen=True)
class TextSizes:
    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    hidden_act: str = "gelu"
    pad_token_id: int = 0
    initializer_range: float = 0.02  # std of random init (BERT's own config field)

    @classmethod
    def from_hf(cls, config: dict[str, Any], source: str = "config.json") -> TextSizes:
        model_type = config.get("model_type", "bert")
        _check(model_type == "bert", source, f"model_type {model_type!r} (only BERT text towers)")
        position_type = config.get("position_embedding_type", "absolute")
        _check(position_type == "absolute", source, f"position_embedding_type {position_type!r}")
        sizes = _pick(cls, config, source)
        _check(sizes.hidden_act in TEXT_ACTIVATIONS, source, f"hidden_act {sizes.hidden_act!r}")
        _check(sizes.hidden_size % sizes.num_attention_heads == 0, source, "hidden_size/heads")
        return sizes

    def to_hf(self) -> dict[str, Any]:
        """The full BertConfig dict (what transformers writes as `text_config`)."""
        from transformers import BertConfig

        return BertConfig(**asdict(self)).to_dict()


def _pick(cls, config: dict[str, Any], source: str):
    values = {f.name: config[f.name] for f in fields(cls) if config.get(f.name) is not None}
    try:
        return cls(**values)
    except TypeError as exc:  # pragma: no cover - dataclass field errors are programming errors
        raise ModelError(f"{source}: {exc}") from exc


def _check(ok: bool, source: str, what: str) -> None:
    if not ok:
        raise ModelError(
            f"{source}: unsupported {what}",
            hint="clipit's towers are CLIP ViT (vision) and BERT (text) as in transformers",
        )
