"""What a run needs besides the model and the data: the tokenizer, checked against the text tower."""

from __future__ import annotations

from typing import Any

from clipit.config import Config
from clipit.data.text import load_tokenizer
from clipit.errors import ConfigError


def load_run_tokenizer(config: Config, named: str | None, vocab_size: int) -> tuple[Any, str]:
    """The tokenizer the model names (model.tokenizer, else the text checkpoint); its ids must fit."""
    name = config.model.tokenizer or named
    if name is None:
        raise ConfigError(
            "model.tokenizer is not set and the text tower is random init, so nothing names a tokenizer",
            "set model.tokenizer to a tokenizer folder, or build the shards from a source that carries one "
            "(build-shards copies it to <shards>/tokenizer, where train finds it)",
        )
    tokenizer = load_tokenizer(name)
    if len(tokenizer) > vocab_size:
        raise ConfigError(
            f"tokenizer {name} has {len(tokenizer)} tokens but model.text.vocab_size is {vocab_size}",
            f"set model.text.vocab_size to at least {len(tokenizer)}",
        )
    return tokenizer, str(name)
