"""`[model]`: the two towers, the projection heads and the logit scale.

Tower sizes use Hugging Face's config names so that a tiny random tower and a published checkpoint
are described the same way. With `pretrained` set, sizes come from the checkpoint's config.json.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from clipit.config.base import Section
from clipit.errors import ConfigError
from clipit.models.sizes import CLIP_LOGIT_SCALE_INIT, TextSizes, VisionSizes

_V, _T = VisionSizes(), TextSizes()  # the towers' own defaults (ViT-B/32, BERT-base)


class VisionTower(Section):
    pretrained: str | None = Field(
        None, description="CLIP checkpoint (hub id or folder); None = random init with the sizes below."
    )
    hidden_size: int = Field(_V.hidden_size, ge=1, description="Width of the vision transformer.")
    num_hidden_layers: int = Field(_V.num_hidden_layers, ge=1, description="Transformer blocks.")
    num_attention_heads: int = Field(_V.num_attention_heads, ge=1, description="Attention heads.")
    intermediate_size: int = Field(_V.intermediate_size, ge=1, description="MLP width.")
    patch_size: int = Field(_V.patch_size, ge=1, description="Side of one image patch, in pixels.")
    image_size: int = Field(_V.image_size, ge=1, description="Input image side, in pixels.")
    layer_norm_eps: float = Field(_V.layer_norm_eps, gt=0, description="LayerNorm epsilon.")


class TextTower(Section):
    pretrained: str | None = Field(
        None, description="BERT checkpoint (hub id or folder); None = random init with the sizes below."
    )
    vocab_size: int = Field(_T.vocab_size, ge=1, description="Vocabulary size.")
    hidden_size: int = Field(_T.hidden_size, ge=1, description="Width of BERT.")
    num_hidden_layers: int = Field(_T.num_hidden_layers, ge=1, description="Transformer blocks.")
    num_attention_heads: int = Field(_T.num_attention_heads, ge=1, description="Attention heads.")
    intermediate_size: int = Field(_T.intermediate_size, ge=1, description="MLP width.")
    max_position_embeddings: int = Field(
        _T.max_position_embeddings, ge=1, description="Longest input the positions cover."
    )
    type_vocab_size: int = Field(_T.type_vocab_size, ge=1, description="Token-type (segment) vocabulary.")
    layer_norm_eps: float = Field(_T.layer_norm_eps, gt=0, description="LayerNorm epsilon.")
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout in training (hidden and attention).")
    initializer_range: float = Field(
        _T.initializer_range,
        gt=0,
        description="Std of the random init (BERT's; about hidden_size**-0.5 suits narrow towers).",
    )


def _check_heads(tower: VisionTower | TextTower, name: str) -> None:
    if tower.hidden_size % tower.num_attention_heads:
        raise ValueError(
            f"{name}.hidden_size {tower.hidden_size} is not divisible by "
            f"{name}.num_attention_heads {tower.num_attention_heads}"
        )


class ModelConfig(Section):
    init_from: str | None = Field(
        None,
        description="A whole HF VisionTextDualEncoder (hub id or folder; a clipit run's export/) to start from.",
    )
    vision: VisionTower = Field(default_factory=VisionTower)
    text: TextTower = Field(default_factory=TextTower)
    tokenizer: str | None = Field(
        None, description="Tokenizer folder or hub id (default: the text tower's checkpoint)."
    )
    max_text_length: int = Field(96, ge=2, description="Tokens per caption, padded or truncated.")
    projection_dim: int = Field(512, ge=1, description="Size of the shared embedding space.")
    reuse_clip_projection: bool = Field(
        True, description="Start the visual projection from CLIP's own when the sizes match."
    )
    logit_scale_init: float = Field(
        CLIP_LOGIT_SCALE_INIT, description="Initial log of the logit scale (CLIP's log(1/0.07))."
    )
    dtype: Literal["float32", "bfloat16"] = Field(
        "float32", description="Compute dtype; parameters stay float32."
    )
    remat: bool = Field(
        False,
        description="Recompute each transformer block's activations in the backward pass: less memory "
        "in training for about one more forward pass of compute; the same numbers.",
    )

    # Only the sizes of random towers are checked here: a checkpoint's own sizes replace the configured
    # ones (all of them with init_from) and are checked when its config.json is read.
    @model_validator(mode="after")
    def _sizes_agree(self) -> ModelConfig:
        if self.init_from is not None:
            return self
        vision, text = self.vision, self.text
        if vision.pretrained is None:
            _check_heads(vision, "vision")
            if vision.image_size % vision.patch_size:
                raise ValueError(
                    f"vision.image_size {vision.image_size} is not a multiple of vision.patch_size {vision.patch_size}"
                )
        if text.pretrained is None:
            _check_heads(text, "text")
            _check_length(self.max_text_length, text.max_position_embeddings, "text.max_position_embeddings")
        return self

    def check_text_length(self, max_position_embeddings: int, source: str) -> None:
        """Raise a ConfigError when captions would be longer than a checkpoint's position table."""
        try:
            _check_length(
                self.max_text_length, max_position_embeddings, f"max_position_embeddings of {source}"
            )
        except ValueError as exc:
            raise ConfigError(f"model.{exc}", "lower model.max_text_length") from None


def _check_length(length: int, positions: int, table: str) -> None:
    if length > positions:
        raise ValueError(
            f"max_text_length {length} exceeds the {positions} positions of the text tower ({table})"
        )
