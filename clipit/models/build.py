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

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from clipit.config.model import ModelConfig
from clipit.errors import ModelError
from clipit.models import hf_io, hf_keys
from clipit.models.dual_encoder import DualEncoder
from clipit.models.sizes import TextSizes, VisionSizes
from clipit.models.vit import interpolate_positions

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
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


def build_model(model_cfg: ModelConfig, *, seed: int = 0) -> tuple[DualEncoder, BuildInfo]:
    """A DualEncoder as `model_cfg` describes it; random parts are initialised from `seed`."""
    dtype = DTYPES[model_cfg.dtype]
    dropout = model_cfg.text.dropout
    if model_cfg.init_from:
        model, folder = load_dual_encoder(model_cfg.init_from, dtype=dtype, text_dropout=dropout, seed=seed)
        model_cfg.check_text_length(model.text_sizes.max_position_embeddings, str(folder / "config.json"))
        info = BuildInfo(vision=str(folder), text=str(folder), projections=str(folder))
        info.tokenizer = model_cfg.tokenizer or str(folder)
        if model.vision_sizes.image_size != model_cfg.vision.image_size:
            info.notes.append(
                f"init_from keeps its image size {model.vision_sizes.image_size}; "
                f"vision.image_size {model_cfg.vision.image_size} is ignored"
            )
        return model, info

    info = BuildInfo(tokenizer=model_cfg.tokenizer or model_cfg.text.pretrained)
    vision = _vision_part(model_cfg, info)
    text = _text_part(model_cfg, dropout, info)
    model = create_model(
        vision.sizes, text.sizes, model_cfg.projection_dim, model_cfg.logit_scale_init, dtype, seed
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
    return model, info


def create_model(
    vision: VisionSizes, text: TextSizes, projection_dim: int, logit_scale_init: float, dtype, seed: int
) -> DualEncoder:
    """A randomly initialised DualEncoder, reproducible from `seed`.

    The module is built abstractly (`nnx.eval_shape`, no compute) and its parameters drawn with numpy:
    jax's own initialisers compile one kernel per parameter shape, which costs tens of seconds on a
    small CPU before the first step. Initialisation follows transformers' (normal 0.02 for weights and
    embeddings, zero biases, unit LayerNorm scales); every Dropout gets its own key from seed + 1.
    """
    model = abstract_model(vision, text, projection_dim, logit_scale_init, dtype, seed)
    rng = np.random.default_rng(seed)
    state = nnx.state(model, nnx.Param)
    for path, variable in nnx.to_flat_state(state):
        name = "/".join(str(p) for p in path)
        shape = variable.get_value().shape
        variable.set_value(jnp.asarray(_initial_value(name, shape, rng, vision, text, logit_scale_init)))
    nnx.update(model, state)
    return model


def abstract_model(
    vision: VisionSizes, text: TextSizes, projection_dim: int, logit_scale_init: float, dtype, seed: int
) -> DualEncoder:
    """A DualEncoder whose parameters are shapes only (`jax.ShapeDtypeStruct`), to be filled from a
    checkpoint or random init without computing values first; its dropout RNG state is real (from
    seed + 1, one key per Dropout)."""

    def build() -> DualEncoder:
        rngs = nnx.Rngs(0)
        for stream in nnx.iter_graph(rngs):
            if type(stream[1]) is nnx.RngStream:
                object.__setattr__(stream[1], "__class__", _TracedStream)
        return DualEncoder(
            vision, text, projection_dim, logit_scale_init=logit_scale_init, dtype=dtype, rngs=rngs
        )

    model = nnx.eval_shape(build)
    for _, node in nnx.iter_graph(model):
        if type(node) is _TracedStream:
            object.__setattr__(node, "__class__", nnx.RngStream)  # plain streams, as when built eagerly
    state = nnx.state(model, nnx.Not(nnx.Param))
    flat = nnx.to_flat_state(state)
    # Split as many keys as there are variables, parameters included: the same dropout keys per seed
    # as when parameters and RNG state were initialised in one pass. Rows go through numpy: iterating
    # a key array compiles an unstack of every row (a second for a large model).
    count = len(nnx.to_flat_state(nnx.state(model)))
    keys = iter(np.asarray(jax.random.key_data(jax.random.split(jax.random.key(seed + 1), count))))
    for path, variable in flat:
        kind = type(variable)
        if issubclass(kind, nnx.RngKey):
            variable.set_value(jax.random.wrap_key_data(next(keys)))
        elif issubclass(kind, nnx.RngCount):
            variable.set_value(jnp.asarray(np.zeros(variable.get_value().shape, np.uint32)))
        else:  # pragma: no cover - the towers hold no other state
            raise TypeError(f"unexpected state {'/'.join(map(str, path))} of type {kind.__name__}")
    nnx.update(model, state)
    return model


class _TracedStream(nnx.RngStream):
    """An RngStream for building under `nnx.eval_shape`: the same keys, but the counter is replaced
    instead of updated in place. flax's in-place update compares the traced value's sharding, whose
    error message walks the whole trace so far: quadratic, 15 s to build ViT-B/32 + BERT-base."""

    def __call__(self) -> jax.Array:
        count = self.count.get_value()
        key = jax.random.fold_in(self.key.get_value(), count)
        self.count.set_value(count + 1)
        return key


def _initial_value(
    name: str, shape, rng: np.random.Generator, vision: VisionSizes, text: TextSizes, logit_scale_init: float
):
    leaf = name.rsplit("/", 1)[-1]
    if name == "logit_scale":
        return np.asarray(logit_scale_init, np.float32)
    if leaf == "bias":
        return np.zeros(shape, np.float32)
    if leaf == "scale":
        return np.ones(shape, np.float32)
    return (rng.standard_normal(shape, dtype=np.float32) * _init_std(name, vision, text)).astype(np.float32)


def _init_std(name: str, vision: VisionSizes, text: TextSizes) -> float:
    """transformers' initialisation: CLIP's width-aware one for the vision tower and projections
    (CLIPPreTrainedModel._init_weights, factor 1), BERT's `initializer_range` for the text tower.
    Width-aware matters for narrow towers: a flat 0.02 at width 128 leaves every image with nearly the
    same [CLS] output, and training starts from a collapsed embedding."""
    if name == "visual_projection/kernel":
        return vision.hidden_size**-0.5
    if name == "text_projection/kernel":
        return text.hidden_size**-0.5
    if name.startswith("text_model/"):
        return text.initializer_range
    width, depth = vision.hidden_size, vision.num_hidden_layers
    in_proj = width**-0.5 * (2 * depth) ** -0.5
    if name.endswith("class_embedding"):
        return width**-0.5
    if "/self_attn/" in name:
        return width**-0.5 if "/out/" in name else in_proj
    if "/fc1/" in name:
        return (2 * width) ** -0.5
    if "/fc2/" in name:
        return in_proj
    return 0.02  # patch and position embeddings: CLIP's initializer_range


def _vision_part(model_cfg: ModelConfig, info: BuildInfo) -> _Part:
    tower = model_cfg.vision
    if not tower.pretrained:
        sizes = VisionSizes(**{f.name: getattr(tower, f.name) for f in _shared_fields(VisionSizes, tower)})
        return _Part(sizes, {}, "random init")
    folder = hf_io.resolve_dir(tower.pretrained)
    config = hf_io.read_config(folder)
    model_type = config.get("model_type")
    source = str(folder / "config.json")
    if model_type == "clip":
        sizes = VisionSizes.from_hf(config.get("vision_config", {}), source)
    elif model_type == "clip_vision_model":
        sizes = VisionSizes.from_hf(config, source)
    else:
        raise ModelError(
            f"{source}: model.vision.pretrained must be a CLIP checkpoint, not model_type {model_type!r}"
        )
    tensors, left_out = hf_io.canonical_keys(hf_io.read_tensors(folder), model_type, str(folder))
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
    return _Part(sizes, tensors, str(folder))


def _text_part(model_cfg: ModelConfig, dropout: float, info: BuildInfo) -> _Part:
    tower = model_cfg.text
    dropouts = dict(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    if not tower.pretrained:
        values = {f.name: getattr(tower, f.name) for f in _shared_fields(TextSizes, tower)}
        return _Part(TextSizes(**values, **dropouts), {}, "random init")
    folder = hf_io.resolve_dir(tower.pretrained)
    source = str(folder / "config.json")
    sizes = TextSizes.from_hf(hf_io.read_config(folder), source)
    model_cfg.check_text_length(sizes.max_position_embeddings, source)
    tensors, left_out = hf_io.canonical_keys(hf_io.read_tensors(folder), "bert", str(folder))
    info.text = f"{tower.pretrained} (bert)"
    if left_out:
        info.notes.append(f"{len(left_out)} tensors of {tower.pretrained} not used (task heads, buffers)")
    return _Part(dataclasses.replace(sizes, **dropouts), tensors, str(folder))


def _shared_fields(sizes_cls, tower) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(sizes_cls) if f.name in type(tower).model_fields]


def load_dual_encoder(
    path_or_id: str | Path,
    *,
    dtype=jnp.float32,
    text_dropout: float | None = None,
    seed: int = 0,
    read: tuple[str, ...] | None = None,
) -> tuple[DualEncoder, Path]:
    """A whole HF VisionTextDualEncoder (ours or e.g. clip-italian/clip-italian) -> (model, its folder).

    Parameters come straight from the checkpoint into an abstract model (no random init to
    overwrite). Every tensor is checked by name and shape; with `read` (e.g. IMAGE_PARTS) only the
    parameters under those prefixes are read, the others stay abstract until `fill_dual_encoder`.
    """
    folder = hf_io.resolve_dir(path_or_id)
    config = hf_io.read_config(folder)
    source = str(folder / "config.json")
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
        float(config.get("logit_scale_init_value", 2.6592)),
        dtype,
        seed,
    )
    fill_dual_encoder(model, folder, read)
    return model, folder


def fill_dual_encoder(model: DualEncoder, folder: Path, read: tuple[str, ...] | None = None) -> None:
    """Read the parameters under `read` (all when None) from the VisionTextDualEncoder in `folder`,
    checking the whole checkpoint against the model first."""
    tensors, _ = hf_io.canonical_keys(hf_io.open_tensors(folder), "vision-text-dual-encoder", str(folder))
    hf_io.fill_params(model, tensors, ("",), str(folder), read=read)
