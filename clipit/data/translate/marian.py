"""The `marian` backend: a MarianMT model (transformers, PyTorch) run locally in batches.

torch is an optional extra (`pip install 'clipit[marian]'`, which also brings sentencepiece for the
Helsinki-NLP tokenizers), so it is imported here and only when a model is loaded. The model comes from a
local folder or a hub id; remote code is never trusted. Decoding uses the model's own generation
config (beam size, maximum length), as the published checkpoints intend.

A MarianMT model translates one language pair: its languages (the tokenizer config's
`source_lang`/`target_lang`, or a hub id's `opus-mt-SRC-TGT`) must match the run's, checked before any
work. A hub id is looked up in the local Hugging Face cache first; only when it is missing there is the
hub asked, and when the hub cannot be reached (offline, `HF_HUB_OFFLINE=1`) the run fails at once
instead of retrying for a minute.
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from clipit.errors import ConfigError, ModelError

# ISO 639-2 codes that opus-mt names and tokenizer configs use for languages with a two-letter code
_THREE_TO_TWO = {"eng": "en", "ita": "it", "deu": "de", "ger": "de", "fra": "fr", "fre": "fr", "spa": "es"}
_THREE_TO_TWO |= {"por": "pt", "nld": "nl", "dut": "nl", "rus": "ru", "zho": "zh", "jpn": "ja"}
_HUB_NAME = re.compile(r"opus-mt-(?:tc-big-)?([a-z]{2,3})-([a-z]{2,3})$")
HUB_PROBE_TIMEOUT = 5.0  # seconds to reach the hub before a missing model counts as offline


def model_languages(name_or_path: str) -> tuple[str, str] | None:
    """(source, target) of a MarianMT model when it says so; None for multilingual or unnamed models."""
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        try:
            config = json.loads((local / "tokenizer_config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        pair = config.get("source_lang"), config.get("target_lang")
    else:
        match = _HUB_NAME.search(name_or_path)
        pair = match.groups() if match else (None, None)
    if not all(isinstance(lang, str) and re.fullmatch(r"[a-z]{2,3}", lang) for lang in pair):
        return None  # e.g. opus-mt-en-ROMANCE: many targets, chosen by a >>xx<< token
    source, target = (_THREE_TO_TWO.get(lang, lang) for lang in pair)
    return source, target


def check_languages(name_or_path: str, source: str, target: str) -> None:
    """Refuse a model made for another language pair (it would fill the manifest with wrong captions)."""
    pair = model_languages(name_or_path)
    if pair is not None and pair != (source, target):
        raise ConfigError(
            f"translate.marian_model {name_or_path} translates {pair[0]} -> {pair[1]}, not {source} -> {target}",
            f"choose a model for {source} -> {target} (e.g. Helsinki-NLP/opus-mt-{source}-{target}) or change --to",
        )


def _hub_unreachable() -> str | None:
    """Why the hub cannot be asked (offline mode, or no connection within seconds), or None."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set"
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname or "", port), timeout=HUB_PROBE_TIMEOUT).close()
    except OSError as exc:
        return f"{parts.hostname}:{port} cannot be reached ({exc})"
    return None


class MarianModel:
    def __init__(self, name_or_path: str, device: str | None = None):
        try:
            import torch
            from transformers import AutoTokenizer, MarianMTModel
        except ImportError as exc:
            raise ConfigError(
                f"the marian backend needs torch and sentencepiece ({exc})",
                "pip install 'clipit[marian]' (torch==2.13.0 is the CPU build), or use another --backend",
            ) from None
        local = Path(name_or_path).expanduser()
        source = str(local) if local.is_dir() else name_or_path
        try:
            self.tokenizer, self.model = _load(AutoTokenizer, MarianMTModel, source, local.is_dir())
        except ImportError as exc:  # MarianTokenizer without sentencepiece
            raise ConfigError(
                f"translate.marian_model {name_or_path}: {exc}", "pip install 'clipit[marian]'"
            ) from None
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"translate.marian_model {name_or_path!r} cannot be loaded: {' '.join(str(exc).split())[:300]}",
                "give a folder with a MarianMT checkpoint, or a hub id such as Helsinki-NLP/opus-mt-en-it "
                "(needs network the first time)",
            ) from None
        self._torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device).eval()

    def translate(self, texts: Sequence[str]) -> list[str]:
        """One batch: tokenise with padding, generate, decode without special tokens."""
        batch = self.tokenizer(list(texts), return_tensors="pt", padding=True, truncation=True)
        batch = {name: tensor.to(self.device) for name, tensor in batch.items() if name != "token_type_ids"}
        with self._torch.inference_mode():
            generated = self.model.generate(**batch)
        return [text.strip() for text in self.tokenizer.batch_decode(generated, skip_special_tokens=True)]


def _load(tokenizer_class: Any, model_class: Any, source: str, local: bool) -> tuple[Any, Any]:
    """Tokenizer and model from a folder, the local hub cache, or (only if it answers) the hub."""

    def load(**options: Any) -> tuple[Any, Any]:
        return (
            tokenizer_class.from_pretrained(source, trust_remote_code=False, **options),
            model_class.from_pretrained(source, trust_remote_code=False, **options),
        )

    if local:
        return load()
    try:
        return load(local_files_only=True)  # cached: no network at all
    except OSError:
        pass
    why = _hub_unreachable()
    if why is not None:
        raise ModelError(
            f"translate.marian_model {source!r} is not in the local Hugging Face cache and the hub "
            f"cannot be asked: {why}",
            "download it once with network (or copy its folder here and give the folder path)",
        )
    return load()
