"""Hugging Face checkpoints in: find the folder, read the tensors, rename them, fill the model strictly.

`open_checkpoint(path_or_hub_id)` finds the folder and reads its config.json and the names and shapes
of its tensors, once; the tensors' values are read when used. A checkpoint is a local folder or a hub
id (fetched with huggingface_hub; never any remote code).
Tensors come from safetensors; a `.bin` is read only through `torch.load(weights_only=True)`, and only
when torch is installed; transformers' Flax `flax_model.msgpack` (data only) is read too. Filling is strict: every tensor of the part being loaded must be used and every
parameter of that part filled with a tensor of the right shape, or a ModelError lists what is missing,
unexpected or of the wrong shape.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from clipit.errors import ModelError
from clipit.models import hf_keys
from clipit.models.hub import is_hub_id
from clipit.models.lazy_tensors import LazyTensors

HUB_FILES = ["*.json", "*.safetensors", "vocab.txt", "*.model", "merges.txt"]
IGNORED_BUFFERS = ("position_ids",)  # non-persistent buffers older transformers saved with the weights
LISTED = 6  # how many names an error message shows per category


@dataclass(frozen=True)
class Checkpoint:
    """An HF checkpoint folder: its config.json and its tensors by name (safetensors read on access)."""

    folder: Path
    config: dict[str, Any]
    tensors: Mapping[str, np.ndarray]

    @property
    def source(self) -> str:
        """What error messages name: the folder's config.json."""
        return str(self.folder / "config.json")

    @property
    def model_type(self) -> str | None:
        return self.config.get("model_type")


def open_checkpoint(name: str | Path) -> Checkpoint:
    """A local checkpoint folder or a hub id (downloaded into the huggingface_hub cache), opened."""
    folder = resolve_dir(name)
    return Checkpoint(folder, read_config(folder), open_tensors(folder))


def resolve_dir(name: str | Path) -> Path:
    """A local checkpoint folder, or a hub id downloaded into the huggingface_hub cache."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise ModelError(
            f"{name}: is a file, not a checkpoint folder", hint="pass the folder holding config.json"
        )
    if not is_hub_id(name):
        raise ModelError(f"{name}: no such folder", hint="pass an existing checkpoint folder or a hub id")
    return _download(str(name))


def _download(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(repo_id, allow_patterns=HUB_FILES))
        # Repos without safetensors: the pickled .bin where torch can read it, else Flax msgpack
        # (clip-italian was trained in Flax); never both, each is hundreds of MB.
        fallbacks = (["pytorch_model*.bin"] if _torch_available() else []) + ["flax_model*.msgpack"]
        for pattern in fallbacks:
            if any(folder.glob("*.safetensors")) or any(folder.glob("*.bin")):
                break
            folder = Path(snapshot_download(repo_id, allow_patterns=[*HUB_FILES, pattern]))
    except Exception as exc:  # network, offline mode, missing repo: all end the same way for the user
        reason = " ".join(str(exc).split())[:200]
        raise ModelError(
            f"{repo_id}: not a local folder and it cannot be fetched from the Hugging Face hub ({reason})",
            hint="without network, download it elsewhere and pass the local folder",
        ) from exc
    return folder


def _torch_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def read_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(
            f"{path}: missing", hint="a Hugging Face checkpoint folder has a config.json"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: not valid JSON ({exc})") from exc


def read_tensors(folder: Path) -> dict[str, np.ndarray]:
    """All tensors of the checkpoint as float32 numpy arrays (old LayerNorm gamma/beta renamed)."""
    for single, index, reader in [
        ("model.safetensors", "model.safetensors.index.json", _read_safetensors),
        ("pytorch_model.bin", "pytorch_model.bin.index.json", _read_bin),
        ("flax_model.msgpack", "flax_model.msgpack.index.json", _read_msgpack),
    ]:
        files = _weight_files(folder, single, index)
        if files:
            tensors: dict[str, np.ndarray] = {}
            for file in files:
                tensors.update(reader(file))
            return {_modern_name(k): v for k, v in tensors.items()}
    raise ModelError(
        f"{folder}: no model.safetensors, pytorch_model.bin or flax_model.msgpack",
        hint="pass a Hugging Face checkpoint folder",
    )


def open_tensors(folder: Path) -> Mapping[str, np.ndarray]:
    """The checkpoint's tensors by name, as `read_tensors` gives them, but read on first access when
    they are safetensors: names and shapes come from the file headers, so a caller can check a whole
    checkpoint and load only the part it needs (an image-only job never reads the text tower)."""
    files = _weight_files(folder, "model.safetensors", "model.safetensors.index.json")
    return LazyTensors.open(files, _modern_name) if files else read_tensors(folder)


def tensor_shape(tensors: Mapping[str, np.ndarray], name: str) -> tuple[int, ...]:
    """A tensor's shape, from the header when the tensors are read lazily."""
    return tensors.shape(name) if isinstance(tensors, LazyTensors) else tuple(np.shape(tensors[name]))


def _weight_files(folder: Path, single: str, index: str) -> list[Path]:
    if (folder / single).exists():
        return [folder / single]
    if (folder / index).exists():
        weight_map = json.loads((folder / index).read_text()).get("weight_map", {})
        return [folder / name for name in sorted(set(weight_map.values()))]
    return []


def _read_safetensors(file: Path) -> dict[str, np.ndarray]:
    from safetensors import safe_open

    try:
        # framework "flax" reads bf16 too (numpy has no bfloat16); we keep float32 host copies
        with safe_open(str(file), framework="flax") as f:
            return {k: np.asarray(f.get_tensor(k).astype(jnp.float32)) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own untyped errors for truncated/corrupt files
        raise ModelError(
            f"{file}: cannot read safetensors ({exc})", hint="re-download the checkpoint"
        ) from exc


def _read_bin(file: Path) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError:
        raise ModelError(
            f"{file}: pickled PyTorch weights need torch to read",
            hint="install torch (CPU build), or use a checkpoint with model.safetensors",
        ) from None
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)  # never unpickle code
    except Exception as exc:
        raise ModelError(f"{file}: cannot read PyTorch weights safely ({exc})") from exc
    return {k: v.float().numpy() for k, v in state.items()}


def _read_msgpack(file: Path) -> dict[str, np.ndarray]:
    """transformers' Flax checkpoints, renamed to the PyTorch names and layouts.

    The same rules transformers used to convert them: `kernel` -> `weight` (2-d transposed, 4-d conv
    [kh, kw, in, out] -> [out, in, kh, kw]), LayerNorm `scale` and Embed `embedding` -> `weight`.
    msgpack holds data only, no code.
    """
    from flax.serialization import msgpack_restore
    from flax.traverse_util import flatten_dict

    try:
        tree = msgpack_restore(file.read_bytes())
    except Exception as exc:  # msgpack raises several untyped errors for damaged files
        raise ModelError(f"{file}: cannot read Flax msgpack weights ({exc})") from exc
    tensors = {}
    for path, value in flatten_dict(tree.get("params", tree)).items():
        *module, leaf = (str(p) for p in path)
        value = np.asarray(value, dtype=np.float32)
        if leaf == "kernel":
            value = value.transpose(3, 2, 0, 1) if value.ndim == 4 else value.T
        if leaf in ("kernel", "scale", "embedding"):
            leaf = "weight"
        tensors[".".join([*module, leaf])] = np.array(value, order="C")  # keeps 0-d as 0-d
    return tensors


def _modern_name(key: str) -> str:
    return re.sub(r"\.gamma$", ".weight", re.sub(r"\.beta$", ".bias", key))


def canonical_keys(
    tensors: Mapping[str, np.ndarray], model_type: str, source: str
) -> tuple[Mapping[str, np.ndarray], list[str]]:
    """Rename a checkpoint's tensors into the dual-encoder key space of hf_keys.

    Returns (renamed tensors, names deliberately left out): a CLIPModel's text tower, a BERT
    checkpoint's task heads (`cls.*`) and stale buffers are not part of what we load.
    """
    names: dict[str, str] = {}  # new name -> checkpoint name
    left_out: list[str] = []
    for key in tensors:
        new = _canonical_name(key, model_type, source)
        if new is None or key.endswith(IGNORED_BUFFERS):
            left_out.append(key)
        else:
            names[new] = key
    if isinstance(tensors, LazyTensors):
        return tensors.renamed(names), left_out
    return {new: tensors[old] for new, old in names.items()}, left_out


def _canonical_name(key: str, model_type: str, source: str) -> str | None:
    vision = hf_keys.V
    if model_type == "clip_vision_model":
        return vision + key.removeprefix("vision_model.")
    if model_type == "clip":
        if key.startswith("vision_model."):
            return vision + key.removeprefix("vision_model.")
        return key if key == "visual_projection.weight" else None
    if model_type == "bert":
        key = key.removeprefix("bert.")
        return None if key.startswith("cls.") else "text_model." + key
    if model_type == "vision-text-dual-encoder":
        if key.startswith("vision_model.") and not key.startswith(vision):
            return vision + key.removeprefix("vision_model.")
        return key
    raise ModelError(
        f"{source}: model_type {model_type!r} is not supported",
        hint="use a CLIP, CLIPVision, BERT or VisionTextDualEncoder checkpoint",
    )


def fill_params(
    model: nnx.Module,
    tensors: Mapping[str, np.ndarray],
    prefixes: tuple[str, ...],
    source: str,
    *,
    read: tuple[str, ...] | None = None,
) -> int:
    """Copy `tensors` (canonical names) into the parameters whose path starts with one of `prefixes`.

    Strict both ways (names and shapes, checked before anything is read); returns how many parameters
    were filled. With `read`, only parameters under those prefixes are read now; the others of
    `prefixes` are checked and keep their current (possibly abstract) value, for `fill_params` later.
    """
    state = nnx.state(model, nnx.Param)
    missing, wrong_shape, used, matched = [], [], set(), []
    for path, variable in nnx.to_flat_state(state):
        name = "/".join(str(p) for p in path)
        if not name.startswith(prefixes):
            continue
        key, transform = hf_keys.hf_key(name)
        expected = hf_keys.hf_shape(variable.get_value().shape, transform)
        if key not in tensors:
            missing.append(key)
        elif tensor_shape(tensors, key) != expected:
            wrong_shape.append(f"{key} {list(tensor_shape(tensors, key))} != {list(expected)}")
        else:
            used.add(key)
            if read is None or name.startswith(read):
                matched.append((variable, key, transform))
    unexpected = sorted(set(tensors) - used - {k.split(" ")[0] for k in wrong_shape})
    if missing or unexpected or wrong_shape:
        raise ModelError(
            f"{source}: weights do not match the architecture: "
            + "; ".join(
                f"{label} {len(names)}: {', '.join(names[:LISTED])}{' …' if len(names) > LISTED else ''}"
                for label, names in [
                    ("missing", missing),
                    ("unexpected", unexpected),
                    ("wrong shape", wrong_shape),
                ]
                if names
            ),
            hint="the checkpoint and config.json disagree, or it is not a CLIP/BERT checkpoint",
        )
    for variable, key, transform in matched:
        dtype = variable.get_value().dtype
        variable.set_value(jnp.asarray(hf_keys.to_ours(tensors[key], transform), dtype))
    nnx.update(model, state)
    return len(matched)
