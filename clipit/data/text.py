"""Text side of preprocessing: loading an HF tokenizer and turning captions into fixed-shape arrays.

One place for it, used by the loader, eval (class prompts) and embed (`--text`), so every caller pads,
truncates and hashes captions the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clipit.errors import ModelError
from clipit.models.hub import is_hub_id

_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "sentencepiece.bpe.model",
    "spiece.model",
)


def load_tokenizer(name_or_path: str | Path) -> Any:
    """An HF tokenizer from a local folder or a hub id (never runs code shipped with a model).

    A local folder is used when it exists; otherwise the name must look like a hub id
    (`org/name`): the local HF cache is tried first, then the hub. Raises ModelError with what to do.
    """
    from transformers import AutoTokenizer  # slow import: only where a tokenizer is needed

    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_dir():
        if not any((path / name).is_file() for name in _TOKENIZER_FILES):
            raise ModelError(
                f"{path}: no tokenizer files (expected one of {', '.join(_TOKENIZER_FILES)})",
                "point model.text.tokenizer at a folder saved with tokenizer.save_pretrained()",
            )
        try:
            return AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"{path}: cannot load the tokenizer ({_first_line(exc)})") from None
    if path.exists():
        raise ModelError(f"{path}: is a file; a tokenizer is a folder (or a hub id)")
    if not is_hub_id(text):
        raise ModelError(
            f"tokenizer folder {text} does not exist", "check the path, or give a hub id like org/name"
        )
    for local_only in (True, False):  # the cache first: no network round trip when it is there
        try:
            return AutoTokenizer.from_pretrained(text, trust_remote_code=False, local_files_only=local_only)
        except (OSError, ValueError) as exc:
            error = exc
    raise ModelError(
        f"tokenizer {text!r}: not a local folder and not loadable from the Hugging Face hub ({_first_line(error)})",
        "check the name, connect to the network once to fill the cache, or give a local folder",
    )


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask), both int32 [B, max_length]: padded to max_length, truncated."""
    encoded = tokenizer(
        list(texts),
        padding="max_length",
        truncation=True,
        max_length=max_length,
        return_attention_mask=True,
        return_token_type_ids=False,
        return_tensors="np",
    )
    return encoded["input_ids"].astype(np.int32), encoded["attention_mask"].astype(np.int32)


def caption_ids(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """A stable int64 hash per row of what the text tower sees (its unmasked token ids).

    Hashing tokens rather than raw text makes "identical" mean what it means to the model: captions
    that differ only in case (uncased tokenizer), spacing, or after the truncation point get one id, so
    the trainer counts them as positives of each other instead of as contradictory negatives.
    """
    masked = (input_ids.astype(np.int64) * (attention_mask != 0)).astype("<i8")
    return np.array(
        [
            int.from_bytes(hashlib.blake2b(row.tobytes(), digest_size=8).digest(), "little", signed=True)
            for row in masked
        ],
        dtype=np.int64,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
