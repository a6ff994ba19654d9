"""Build a DualEncoder from the `[model]` config, or load a whole HF VisionTextDualEncoder.

`build_model` starts each part from what the config names: `init_from` (a whole dual encoder), else
`vision.pretrained` (a CLIPModel or CLIPVisionModel; a CLIPModel's own visual projection is reused when
`reuse_clip_projection` and the sizes match) and `text.pretrained` (a BERT checkpoint), else random init
with the configured sizes. With a pretrained vision tower the sizes come from its config.json, except
`vision.image_size`, the input size: a checkpoint trained at another size gets its position table
interpolated once, at load time, so the model (and its export) is consistently of the configured size.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from clipit.config.model import ModelConfig
from clipit.errors import ModelError
from clipit.models import hf_io, hf_keys
from clipit.models.create import abstract_model, create_model
from clipit.models.dual_encoder import DualEncoder
from clipit.models.kernels import kernels_for
from clipit.models.remat import set_remat
from clipit.models.sizes import CLIP_LOGIT_SCALE_INIT, TextSizes, VisionSizes
from clipit.models.vit import interpolate_positions

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}  # config names -> compute dtypes
POSITIONS_KEY = hf_keys.V + "embeddings.position_embedding.weight"
IMAGE_PARTS = ("vision_model/", "visual_projection/")  # the parameters encoding images reads
TEXT_PARTS = ("text_model/", "text_projection/")  # and encoding texts


@dataclass
class BuildInfo:
    """Where each part came from (for logs and the run folder) and the tokenizer to use."""

    vision: str = "random init"
    text: str = "random init"
    projections: str = "random init"
    tokenizer: str | None = None  # folder or hub id; None when nothing names one
    notes: list[str] = field(default_factory=list)


@dataclass
class _Part:
    sizes: VisionSizes | TextSizes
    tensors: dict[str, np.ndarray]
    source: str


def build_model(
    model_cfg: ModelConfig, *, seed: int = 0, kernels: str | None = None
) -> tuple[DualEncoder, BuildInfo]:
    """A DualEncoder as `model_cfg` describes it; random parts are initialised from `seed`. `kernels`:
    the setting of clipit.models.kernels for the devices it will run on (default: `jax.devices()`)."""
    dtype = DTYPES[model_cfg.dtype]
    dropout = model_cfg.text.dropout
    kernels = kernels or kernels_for()
    if model_cfg.init_from:
        model, folder = load_dual_encoder(
            model_cfg.init_from, dtype=dtype, text_dropout=dropout, seed=seed, kernels=kernels
        )
        model_cfg.check_text_length(model.text_sizes.max_position_embeddings, str(folder / "config.json"))
        info = BuildInfo(vision=str(folder), text=str(folder), projections=str(folder))
        info.tokenizer = model_cfg.tokenizer or str(folder)
        if model.vision_sizes.image_size != model_cfg.vision.image_size:
            info.notes.append(
                f"init_from keeps its image size {model.vision_sizes.image_size}; "
                f"vision.image_size {model_cfg.vision.image_size} is ignored"
            )
        return set_remat(model, model_cfg.remat), info

    info = BuildInfo(tokenizer=model_cfg.tokenizer or model_cfg.text.pretrained)
    vision = _vision_part(model_cfg, info)
    text = _text_part(model_cfg, dropout, info)
    model = create_model(
        vision.sizes, text.sizes, model_cfg.projection_dim, model_cfg.logit_scale_init, dtype, seed, kernels
    )
    if vision.tensors:
        prefixes = ("vision_model/",)
        projection = vision.tensors.get("visual_projection.weight")
        expected = (model_cfg.projection_dim, vision.sizes.hidden_size)
        if projection is not None and model_cfg.reuse_clip_projection and projection.shape == expected:
            prefixes += ("visual_projection/",)
            info.projections = f"visual projection from {vision.source}, text projection random init"
        else:
            vision.tensors.pop("visual_projection.weight", None)
            if projection is not None and model_cfg.reuse_clip_projection:
                info.notes.append(
                    f"CLIP's visual projection {list(projection.shape)} does not fit projection_dim "
                    f"{model_cfg.projection_dim}: it starts from random init"
                )
        hf_io.fill_params(model, vision.tensors, prefixes, vision.source)
    if text.tensors:
        prefixes = ("text_model/",)
        if "text_model.pooler.dense.weight" not in text.tensors:
            # Masked-LM checkpoints may ship without BERT's pooler; transformers starts it from random
            # init too. Everything else stays strict.
            prefixes = ("text_model/embeddings/", "text_model/layers/")
            info.notes.append(f"{text.source} has no pooler: text_model/pooler starts from random init")
        hf_io.fill_params(model, text.tensors, prefixes, text.source)
    return set_remat(model, model_cfg.remat), info


def _vision_part(model_cfg: ModelConfig, info: BuildInfo) -> _Part:
    tower = model_cfg.vision
    if not tower.pretrained:
        sizes = VisionSizes(**{f.name: getattr(tower, f.name) for f in _shared_fields(VisionSizes, tower)})
        return _Part(sizes, {}, "random init")
    checkpoint = hf_io.open_checkpoint(tower.pretrained)
    model_type, source = checkpoint.model_type, checkpoint.source
    if model_type == "clip":
        sizes = VisionSizes.from_hf(checkpoint.config.get("vision_config", {}), source)
    elif model_type == "clip_vision_model":
        sizes = VisionSizes.from_hf(checkpoint.config, source)
    else:
        raise ModelError(
            f"{source}: model.vision.pretrained must be a CLIP checkpoint, not model_type {model_type!r}"
        )
    tensors, left_out = _used_tensors(checkpoint, model_type)
    info.vision = f"{tower.pretrained} ({model_type})"
    if left_out:
        info.notes.append(
            f"{len(left_out)} tensors of {tower.pretrained} not used (CLIP's text tower, buffers)"
        )
    if tower.image_size != sizes.image_size:
        grid = tower.image_size // sizes.patch_size
        if tower.image_size % sizes.patch_size:
            raise ModelError(
                f"model.vision.image_size {tower.image_size} is not a multiple of the patch size "
                f"{sizes.patch_size} of {tower.pretrained}"
            )
        if POSITIONS_KEY in tensors:
            tensors[POSITIONS_KEY] = np.asarray(
                interpolate_positions(jnp.asarray(tensors[POSITIONS_KEY]), grid, grid)
            )
        info.notes.append(f"positions interpolated from {sizes.image_size} px to {tower.image_size} px")
        sizes = dataclasses.replace(sizes, image_size=tower.image_size)
    return _Part(sizes, tensors, str(checkpoint.folder))


def _text_part(model_cfg: ModelConfig, dropout: float, info: BuildInfo) -> _Part:
    tower = model_cfg.text
    dropouts = dict(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    if not tower.pretrained:
        values = {f.name: getattr(tower, f.name) for f in _shared_fields(TextSizes, tower)}
        return _Part(TextSizes(**values, **dropouts), {}, "random init")
    checkpoint = hf_io.open_checkpoint(tower.pretrained)
    sizes = TextSizes.from_hf(checkpoint.config, checkpoint.source)
    model_cfg.check_text_length(sizes.max_position_embeddings, checkpoint.source)
    tensors, left_out = _used_tensors(checkpoint, "bert")
    info.text = f"{tower.pretrained} (bert)"
    if left_out:
        info.notes.append(f"{len(left_out)} tensors of {tower.pretrained} not used (task heads, buffers)")
    return _Part(dataclasses.replace(sizes, **dropouts), tensors, str(checkpoint.folder))


def _used_tensors(checkpoint: hf_io.Checkpoint, model_type: str) -> tuple[dict[str, np.ndarray], list[str]]:
    """The tensors a tower loads, read now (a CLIPModel's text tower and BERT's heads never are), in
    the dual encoder's key space; and the names left out."""
    tensors, left_out = hf_io.canonical_keys(checkpoint.tensors, model_type, str(checkpoint.folder))
    return {name: tensors[name] for name in tensors}, left_out


def _shared_fields(sizes_cls, tower) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(sizes_cls) if f.name in type(tower).model_fields]


def load_dual_encoder(
    path_or_id: str | Path,
    *,
    dtype=jnp.float32,
    text_dropout: float | None = None,
    seed: int = 0,
    read: tuple[str, ...] | None = None,
    kernels: str | None = None,
) -> tuple[DualEncoder, Path]:
    """A whole HF VisionTextDualEncoder (ours or e.g. clip-italian/clip-italian) -> (model, its folder).

    Parameters come straight from the checkpoint into an abstract model (no random init to
    overwrite). Every tensor is checked by name and shape; with `read` (e.g. IMAGE_PARTS) only the
    parameters under those prefixes are read, the others stay abstract until `fill_dual_encoder`.
    `kernels`: as for `build_model`.
    """
    checkpoint = hf_io.open_checkpoint(path_or_id)
    config, source = checkpoint.config, checkpoint.source
    if config.get("model_type") != "vision-text-dual-encoder":
        raise ModelError(
            f"{source}: model_type {config.get('model_type')!r}, expected 'vision-text-dual-encoder'",
            hint="for separate CLIP and BERT checkpoints set model.vision.pretrained and model.text.pretrained",
        )
    vision_config = config.get("vision_config", {})
    if vision_config.get("model_type") not in ("clip_vision_model", "clip"):
        raise ModelError(
            f"{source}: vision_config is {vision_config.get('model_type')!r}, not a CLIP vision tower"
        )
    if vision_config.get("model_type") == "clip":
        vision_config = vision_config.get("vision_config", {})
    text = TextSizes.from_hf(config.get("text_config", {}), source)
    if text_dropout is not None:
        text = dataclasses.replace(
            text, hidden_dropout_prob=text_dropout, attention_probs_dropout_prob=text_dropout
        )
    model = abstract_model(
        VisionSizes.from_hf(vision_config, source),
        text,
        int(config.get("projection_dim", 512)),
        float(config.get("logit_scale_init_value", CLIP_LOGIT_SCALE_INIT)),
        dtype,
        seed,
        kernels,
    )
    fill_dual_encoder(model, checkpoint, read)
    return model, checkpoint.folder


def fill_dual_encoder(
    model: DualEncoder, checkpoint: hf_io.Checkpoint | Path, read: tuple[str, ...] | None = None
) -> None:
    """Read the parameters under `read` (all when None) from a VisionTextDualEncoder checkpoint (opened,
    or its folder), checking the whole checkpoint against the model first."""
    if not isinstance(checkpoint, hf_io.Checkpoint):
        checkpoint = hf_io.open_checkpoint(checkpoint)
    folder = str(checkpoint.folder)
    tensors, _ = hf_io.canonical_keys(checkpoint.tensors, "vision-text-dual-encoder", folder)
    hf_io.fill_params(model, tensors, ("",), folder, read=read)
