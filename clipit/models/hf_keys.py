"""The one mapping between our parameter paths and Hugging Face's weight names, plus per-key transforms.

Names are those of transformers' `VisionTextDualEncoderModel` with a CLIP vision tower and a BERT text
tower, vision keys spelled with two prefixes (`vision_model.vision_model.…`, what transformers 4.x
wrote and 4.x and 5 both read). Checkpoints of the single towers (CLIPVisionModel, CLIPModel,
BertModel) are first renamed into this space by `canonical_keys` in hf_io.

Layouts: PyTorch Linear weights are [out, in] and ours [in, out] (transpose); the patch conv is
[out, in, kh, kw] in PyTorch and [kh, kw, in, out] here.
"""

from __future__ import annotations

import re

import numpy as np

V = "vision_model.vision_model."
VL = V + "encoder.layers.{i}."
TL = "text_model.encoder.layer.{i}."

# (our module path, HF module name, kind). "{i}" is a layer index. The kind says how leaves map:
#   linear: kernel -> weight (transposed), bias -> bias    norm:  scale -> weight, bias -> bias
#   embed:  embedding -> weight                             conv / raw: the Param itself, one HF tensor
TABLE: list[tuple[str, str, str]] = [
    ("logit_scale", "logit_scale", "raw"),
    ("visual_projection", "visual_projection", "linear"),
    ("text_projection", "text_projection", "linear"),
    ("vision_model/patch_embedding", V + "embeddings.patch_embedding.weight", "conv"),
    ("vision_model/class_embedding", V + "embeddings.class_embedding", "raw"),
    ("vision_model/position_embedding", V + "embeddings.position_embedding.weight", "raw"),
    ("vision_model/pre_layrnorm", V + "pre_layrnorm", "norm"),
    ("vision_model/layers/{i}/layer_norm1", VL + "layer_norm1", "norm"),
    ("vision_model/layers/{i}/self_attn/query", VL + "self_attn.q_proj", "linear"),
    ("vision_model/layers/{i}/self_attn/key", VL + "self_attn.k_proj", "linear"),
    ("vision_model/layers/{i}/self_attn/value", VL + "self_attn.v_proj", "linear"),
    ("vision_model/layers/{i}/self_attn/out", VL + "self_attn.out_proj", "linear"),
    ("vision_model/layers/{i}/layer_norm2", VL + "layer_norm2", "norm"),
    ("vision_model/layers/{i}/fc1", VL + "mlp.fc1", "linear"),
    ("vision_model/layers/{i}/fc2", VL + "mlp.fc2", "linear"),
    ("vision_model/post_layernorm", V + "post_layernorm", "norm"),
    ("text_model/embeddings/word_embeddings", "text_model.embeddings.word_embeddings", "embed"),
    ("text_model/embeddings/position_embeddings", "text_model.embeddings.position_embeddings", "embed"),
    ("text_model/embeddings/token_type_embeddings", "text_model.embeddings.token_type_embeddings", "embed"),
    ("text_model/embeddings/LayerNorm", "text_model.embeddings.LayerNorm", "norm"),
    ("text_model/layers/{i}/attention/query", TL + "attention.self.query", "linear"),
    ("text_model/layers/{i}/attention/key", TL + "attention.self.key", "linear"),
    ("text_model/layers/{i}/attention/value", TL + "attention.self.value", "linear"),
    ("text_model/layers/{i}/attention/out", TL + "attention.output.dense", "linear"),
    ("text_model/layers/{i}/attention_norm", TL + "attention.output.LayerNorm", "norm"),
    ("text_model/layers/{i}/intermediate", TL + "intermediate.dense", "linear"),
    ("text_model/layers/{i}/output", TL + "output.dense", "linear"),
    ("text_model/layers/{i}/output_norm", TL + "output.LayerNorm", "norm"),
    ("text_model/pooler", "text_model.pooler.dense", "linear"),
]

LEAVES = {
    "linear": {"kernel": "weight", "bias": "bias"},
    "norm": {"scale": "weight", "bias": "bias"},
    "embed": {"embedding": "weight"},
}


def _compile(pattern: str) -> re.Pattern:
    return re.compile(re.escape(pattern).replace(re.escape("{i}"), r"(?P<i>\d+)"))


_COMPILED = [(_compile(ours), hf, kind) for ours, hf, kind in TABLE]


def hf_key(path: str) -> tuple[str, str]:
    """Our '/'-joined parameter path -> (HF key, transform name). KeyError for an unmapped path."""
    for regex, hf, kind in _COMPILED:
        if kind in ("raw", "conv"):
            match = regex.fullmatch(path)
            leaf = None
        else:
            module, _, leaf = path.rpartition("/")
            match = regex.fullmatch(module)
        if not match:
            continue
        name = hf.replace("{i}", match.groupdict().get("i") or "")
        if leaf is None:
            return name, kind
        if leaf in LEAVES[kind]:
            transform = "linear" if (kind == "linear" and leaf == "kernel") else "raw"
            return f"{name}.{LEAVES[kind][leaf]}", transform
    raise KeyError(f"no HF name for parameter {path!r}")


def to_ours(value: np.ndarray, transform: str) -> np.ndarray:
    """An HF tensor in our layout."""
    if transform == "linear":
        return value.T
    if transform == "conv":
        return value.transpose(2, 3, 1, 0)
    return value


def to_hf(value: np.ndarray, transform: str) -> np.ndarray:
    """One of our arrays in HF's layout (contiguous, as safetensors requires)."""
    if transform == "linear":
        value = value.T
    elif transform == "conv":
        value = value.transpose(3, 2, 0, 1)
    return np.array(value, order="C")  # ascontiguousarray would turn a 0-d logit_scale into 1-d


def hf_shape(shape: tuple[int, ...], transform: str) -> tuple[int, ...]:
    """The shape the HF tensor must have for one of our parameters of `shape`."""
    if transform == "linear":
        return tuple(reversed(shape))
    if transform == "conv":
        kh, kw, cin, cout = shape
        return (cout, cin, kh, kw)
    return tuple(shape)
