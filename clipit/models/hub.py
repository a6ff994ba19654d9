"""Whether a model name is a Hugging Face hub id: the one check, for checkpoints and tokenizers alike.

Light on purpose (no jax, no huggingface_hub): the data layer's tokenizer loading uses it too.
"""

from __future__ import annotations

import re
from pathlib import Path

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")  # "name" or "org/name"


def is_hub_id(name: str | Path) -> bool:
    """True when `name` can only mean a hub repository: `org/name` or `name`, never a path that
    starts with '.', '/' or '~' (those are local folders, even when they do not exist)."""
    text = str(name)
    return bool(_HUB_ID.match(text)) and not text.startswith((".", "/", "~"))
