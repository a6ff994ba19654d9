"""Translate test data: manifests of English captions the loopback Libre server knows, and configs."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from clipit.config.translate import TranslateConfig
from clipit.data import manifest
from clipit.data.translate.packing import normalise
from tests.support.libre_server import DICTIONARY, LibreServer


def captions(n_unique: int, seed: int = 0, words: int = 6) -> list[str]:
    """Distinct English captions made of the server's dictionary words (plus a number: all distinct)."""
    rng = random.Random(seed)
    vocab = sorted(DICTIONARY)
    return [" ".join([*(rng.choice(vocab) for _ in range(words)), f"n{i}"]) for i in range(n_unique)]


def write_manifest(path: Path, english: Sequence[str | None], **columns: Sequence[object]) -> Path:
    rows = []
    for i, text in enumerate(english):
        row = {"key": f"cc3m/{i:06d}", "source": "cc3m", "caption_en": text, "status": "ok", "split": "train"}
        row.update({name: values[i] for name, values in columns.items()})
        rows.append(row)
    return manifest.write(manifest.from_rows(rows), path)


def libre_config(server: LibreServer, tmp_path: Path, **overrides: object) -> TranslateConfig:
    settings: dict[str, object] = {
        "input": tmp_path / "in" / "manifest.parquet",
        "output": tmp_path / "out" / "manifest.parquet",
        "backend": "libre",
        "endpoint": server.url,
        "cache": tmp_path / "cache.sqlite",
        "requests_per_second": 1000.0,
        "backoff": 0.01,
        "retries": 8,
        "timeout": 10.0,
    }
    settings.update(overrides)
    return TranslateConfig(**settings)


def unique_normalised(english: Sequence[str | None]) -> set[str]:
    return {normalise(text) for text in english if text and normalise(text)}
