"""Batched encoding of images and texts with a loaded model: the one place eval, embed and search use.

`open_model(M)` accepts what `--model` accepts: a clipit run folder (latest checkpoint), a
Hugging Face VisionTextDualEncoder folder, or a hub id. It returns an `Encoder` whose two methods give
float32, L2-normalised rows:

- `encode_images(paths or PIL images)`: decoding and the eval transform (clipit.data.preprocess, the same
  as CLIPImageProcessor) run in a thread pool ahead of the model, so decoding overlaps the forward pass.
  The threads stop at uint8 pixels (resize + centre crop); the model normalises them in the jitted
  forward pass (the same values as preprocess.eval_transform): a quarter of the bytes to move.
  An unreadable image is reported (a warning naming it) and counted, never fatal: the result says which
  inputs were kept.
- `encode_texts(texts)`: tokenised once, sorted by length, and each batch padded to its own longest
  text (rounded up to a length bucket: 8, 16, 32, 64, ...; at most the model's limit) rather than to
  the limit: BERT's output does not depend on padding, so short captions cost a fraction of the time
  even when a few long ones are in the same call. Rows come back in input order.

Batches are all `batch_size` rows (the last one padded), so XLA compiles one image function, and one
text function per length bucket in use, not one per distinct batch size.

Starting fast: an HF folder's weights go straight from safetensors into the model (no random init
first), and each tower is read on its first use: embedding images never reads the text tower nor loads
the tokenizer (nor imports transformers), and embedding texts never reads the vision tower. Compiled
code is kept in JAX's persistent compilation cache under the user cache folder
(`$XDG_CACHE_HOME/clipit/jax`, else `~/.cache/clipit/jax`), so a second run skips compilation.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from PIL import Image

from clipit.compile_cache import enable_compilation_cache
from clipit.console import progress, warn
from clipit.errors import ClipitError, ModelError
from clipit.models.normalize import l2_normalize
from clipit.runs.layout import CHECKPOINTS_DIR, export_dir, is_run_dir

MAX_FAILURES_SHOWN = 20  # warnings past this are summarised in one line
DECODE_THREADS = max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class EncodedImages:
    """Embeddings of the readable inputs, in input order, and what happened to the others."""

    vectors: np.ndarray  # float32 [len(kept), D], rows L2-normalised
    kept: np.ndarray  # int64 indices of the inputs that were encoded
    failures: list[tuple[int, str]] = field(default_factory=list)  # (input index, reason)


@dataclass
class Encoder:
    model: nnx.Module
    tokenizer_source: str  # folder or hub id, loaded on the first text encode
    image_size: int
    max_text_length: int  # the model's limit; the tokenizer's own limit may lower it once loaded
    name: str
    dtype: str = "float32"
    # Reads a tower's weights into `model` ("image" or "text"); None when the model is fully loaded.
    read_tower: Callable[[str], None] | None = field(default=None, repr=False)
    _compiled: dict[str, Callable] = field(default_factory=dict, repr=False)
    _tokenizer: object = field(default=None, repr=False)
    _towers_read: set[str] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def dim(self) -> int:
        return int(self.model.projection_dim)

    @property
    def tokenizer(self):
        """The text tokenizer, loaded on first use (importing transformers takes seconds)."""
        with self._lock:
            if self._tokenizer is None:
                from clipit.data.text import load_tokenizer

                tokenizer = load_tokenizer(self.tokenizer_source)
                limit = getattr(tokenizer, "model_max_length", None)
                if isinstance(limit, int) and 0 < limit < self.max_text_length:
                    self.max_text_length = limit
                self._tokenizer = tokenizer
            return self._tokenizer

    # -- images -------------------------------------------------------------------------------------
    def encode_images(
        self, items: Sequence[Path | str | Image.Image], *, batch_size: int = 64, description: str = "images"
    ) -> EncodedImages:
        """Encode images (paths or PIL images); unreadable ones are warned about and left out."""
        from clipit.data.decode import load_image, to_rgb
        from clipit.data.preprocess import eval_resize_crop

        def prepare(item) -> np.ndarray | str:
            try:
                pixels = to_rgb(item) if isinstance(item, Image.Image) else load_image(Path(item))
                return eval_resize_crop(pixels, self.image_size)  # uint8: the model normalises it
            except (ClipitError, OSError, ValueError, Image.DecompressionBombError) as exc:
                return getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"

        batch = _batch_rows(batch_size, len(items))
        encode = self._function("image")
        vectors: list[np.ndarray] = []
        kept: list[int] = []
        failures: list[tuple[int, str]] = []
        with ThreadPoolExecutor(DECODE_THREADS) as pool, progress() as bar:
            task = bar.add_task(f"encoding {description}", total=len(items))
            pending: list[tuple[int, np.ndarray]] = []
            for index, prepared in enumerate(_prefetch(pool, prepare, items, depth=2 * batch)):
                if isinstance(prepared, str):
                    failures.append((index, prepared))
                    _warn_failure(len(failures), items[index], prepared)
                    bar.advance(task)
                else:
                    pending.append((index, prepared))
                if len(pending) == batch or (index == len(items) - 1 and pending):
                    pixels = np.stack([p for _, p in pending])
                    vectors.append(self._run(encode, pixels, batch))
                    kept += [i for i, _ in pending]
                    bar.advance(task, len(pending))
                    pending = []
        if len(failures) > MAX_FAILURES_SHOWN:
            warn(
                f"{len(failures)} images could not be read in all ({len(failures) - MAX_FAILURES_SHOWN} not shown)"
            )
        out = np.concatenate(vectors) if vectors else np.zeros((0, self.dim), np.float32)
        return EncodedImages(out, np.array(kept, dtype=np.int64), failures)

    # -- texts --------------------------------------------------------------------------------------
    def encode_texts(
        self, texts: Sequence[str], *, batch_size: int = 64, description: str = "texts"
    ) -> np.ndarray:
        """Encode texts; float32 [len(texts), D]."""
        from clipit.data.text import tokenize

        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        tokenizer = self.tokenizer
        ids, mask = tokenize(tokenizer, texts, self.max_text_length)
        lengths = mask.sum(axis=1)
        # Shortest first, each batch cut to its own longest text (rounded up to a bucket): a batch of
        # short captions stops paying for the one long caption elsewhere in the call.
        order = np.argsort(lengths, kind="stable")
        batch = _batch_rows(batch_size, len(texts))
        encode = self._function("text")
        out = np.zeros((len(texts), self.dim), np.float32)
        with progress() as bar:
            task = bar.add_task(f"encoding {description}", total=len(texts))
            for start in range(0, len(texts), batch):
                rows = order[start : start + batch]
                length = min(ids.shape[1], _length_bucket(int(lengths[rows].max())))
                out[rows] = self._run(encode, (ids[rows, :length], mask[rows, :length]), batch)
                bar.advance(task, len(rows))
        return out

    # -- compiled forward passes --------------------------------------------------------------------
    def _function(self, kind: str) -> Callable:
        """The jitted forward pass of `kind` bound to this model's state.

        The jitted functions are module-level with the graph definition as a static argument, so two
        encoders of the same architecture (several --model runs, or a model opened twice) share
        compiled code instead of compiling again.
        """
        with self._lock:
            if kind not in self._compiled:
                if self.read_tower is not None and kind not in self._towers_read:
                    self.read_tower(kind)
                    self._towers_read.add(kind)
                graphdef, state = nnx.split(self.model)
                # The other tower may still be unread (shapes only): the forward pass never touches
                # it, so a 0-d stand-in keeps the state a valid jit argument.
                state = jax.tree.map(_stand_in, state)
                forward = _encode_image if kind == "image" else _encode_text
                self._compiled[kind] = lambda inputs: forward(graphdef, state, inputs)
            return self._compiled[kind]

    def _run(self, encode: Callable, inputs, batch: int) -> np.ndarray:
        """Pad to `batch` rows (one compiled shape), run, drop the padding, re-normalise in float32."""
        rows = len(inputs[0]) if isinstance(inputs, tuple) else len(inputs)
        padded = jax.tree.map(lambda a: _pad_rows(a, batch), inputs)
        vectors = np.asarray(encode(padded), dtype=np.float32)[:rows]
        return l2_normalize(vectors)


def _stand_in(leaf):
    return np.zeros((), leaf.dtype) if isinstance(leaf, jax.ShapeDtypeStruct) else leaf


@functools.partial(jax.jit, static_argnums=0)
def _encode_image(graphdef, state, pixels):
    return nnx.merge(graphdef, state).encode_image(pixels)  # uint8: normalised inside the model


@functools.partial(jax.jit, static_argnums=0)
def _encode_text(graphdef, state, inputs):
    return nnx.merge(graphdef, state).encode_text(*inputs)


def _batch_rows(batch_size: int, count: int) -> int:
    """`batch_size`, or for fewer items the next power of two: few distinct shapes, little padding."""
    return max(1, min(batch_size, 1 << max(0, count - 1).bit_length()))


def _length_bucket(tokens: int) -> int:
    """Padded text length for a batch whose longest text has `tokens` tokens: 8, 16, 32, then
    multiples of 32. Coarse buckets bound the compiled text shapes (4 for a 64-token model, 6 for 128),
    and above 8 tokens padding at most doubles a batch's length (BERT's output does not depend on it)."""
    if tokens <= 32:
        return max(8, 1 << max(0, tokens - 1).bit_length())
    return -(-tokens // 32) * 32


def _pad_rows(array: np.ndarray, rows: int) -> np.ndarray:
    array = np.asarray(array)
    if len(array) == rows:
        return array
    return np.concatenate([array, np.zeros((rows - len(array), *array.shape[1:]), array.dtype)])


def _prefetch(pool: ThreadPoolExecutor, fn: Callable, items: Sequence, depth: int) -> Iterator:
    """fn(item) for each item in order, with up to `depth` items in flight in the pool."""
    futures = []
    for item in items:
        futures.append(pool.submit(fn, item))
        if len(futures) > depth:
            yield futures.pop(0).result()
    for future in futures:
        yield future.result()


def _warn_failure(number: int, item, reason: str) -> None:
    if number <= MAX_FAILURES_SHOWN:
        name = str(item) if not isinstance(item, Image.Image) else "<PIL image>"
        warn(f"skipping unreadable image: {reason if reason.startswith(name) else f'{name}: {reason}'}")


# -- opening a model -------------------------------------------------------------------------------
def open_model(spec: str | Path, *, dtype: str = "float32", compilation_cache: bool = True) -> Encoder:
    """Load a clipit run folder, an HF VisionTextDualEncoder folder or a hub id, ready to encode.

    An HF checkpoint is checked whole (every tensor's name and shape) but each tower's weights are
    read on its first encode. `compilation_cache` keeps compiled code under the user cache folder."""
    if compilation_cache:
        enable_compilation_cache()
    from clipit.models.build import DTYPES

    compute_dtype = DTYPES.get(dtype)
    if compute_dtype is None:
        raise ModelError(f"unknown dtype {dtype!r}", "use float32 or bfloat16")
    path = Path(spec).expanduser()
    if (
        path.is_dir()
        and not (path / CHECKPOINTS_DIR).is_dir()
        and (export_dir(path) / "config.json").is_file()
    ):
        path = spec = export_dir(path)  # a run whose checkpoints were pruned: its final export
    read_tower = None
    if path.is_dir() and is_run_dir(path):
        from clipit.runs.model import load_run_model

        model, model_cfg, tokenizer_path = load_run_model(path)
        if tokenizer_path is None:
            raise ModelError(
                f"{path}: the run's config names no tokenizer", "set model.tokenizer in its config"
            )
        image_size, max_length = model_cfg.vision.image_size, model_cfg.max_text_length
        if compute_dtype != jnp.float32:
            model = _with_compute_dtype(model, compute_dtype)
    else:
        from clipit.models.build import IMAGE_PARTS, TEXT_PARTS, fill_dual_encoder, load_dual_encoder

        # logit_scale now (zero-shot scoring reads it); the towers when first used.
        model, hf_dir = load_dual_encoder(str(spec), dtype=compute_dtype, read=("logit_scale",))
        parts = {"image": IMAGE_PARTS, "text": TEXT_PARTS}
        read_tower = lambda kind: fill_dual_encoder(model, hf_dir, parts[kind])  # noqa: E731
        tokenizer_path = hf_dir
        image_size, max_length = _hf_sizes(Path(hf_dir))
    return Encoder(
        model, str(tokenizer_path), image_size, max_length, name=str(spec), dtype=dtype, read_tower=read_tower
    )


def _hf_sizes(hf_dir: Path) -> tuple[int, int]:
    """Image side from preprocessor_config.json (crop size; else the vision config); max tokens from
    the text config's position embeddings."""
    try:
        config = json.loads((hf_dir / "config.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError) as exc:
        raise ModelError(
            f"cannot read {hf_dir / 'config.json'}: {exc}", "pass a VisionTextDualEncoder folder"
        ) from None
    image_size = int(config.get("vision_config", {}).get("image_size", 224))
    processor_file = hf_dir / "preprocessor_config.json"
    if processor_file.is_file():
        processor = json.loads(processor_file.read_text())
        crop = processor.get("crop_size")
        if isinstance(crop, dict) and "height" in crop:
            image_size = int(crop["height"])
        elif isinstance(crop, int):
            image_size = crop
    max_length = int(config.get("text_config", {}).get("max_position_embeddings", 512))
    return image_size, max_length


def _with_compute_dtype(model: nnx.Module, dtype) -> nnx.Module:
    """The same parameters in a model built to compute in `dtype` (parameters stay float32)."""
    from clipit.models import DualEncoder

    if not isinstance(model, DualEncoder):
        raise ModelError("bfloat16 needs a DualEncoder model", "use --dtype float32")
    twin = nnx.eval_shape(
        lambda: DualEncoder(
            model.vision_sizes,
            model.text_sizes,
            model.projection_dim,
            dtype=dtype,
            kernels=model.kernels,
            rngs=nnx.Rngs(0),
        )
    )
    nnx.update(twin, nnx.state(model))
    return twin
