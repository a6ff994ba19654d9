"""The `marian` backend: a MarianMT model (transformers, PyTorch) run locally in batches.

torch is an optional extra (`pip install 'clipit[marian]'`, which also brings sentencepiece for the
Helsinki-NLP tokenizers), so it is imported here and only when a model is loaded. The model comes from a
local folder or a hub id; remote code is never trusted. Decoding uses the model's own generation
config (beam size, maximum length), as the published checkpoints intend.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clipit.errors import ConfigError, ModelError


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
            self.tokenizer: Any = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
            self.model: Any = MarianMTModel.from_pretrained(source, trust_remote_code=False)
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
