"""Tiny training shards and a tiny tokenizer for the loader and text tests (written here, not by build-shards,
so these tests depend only on the shard format)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import simplejpeg
from transformers import BertTokenizer

from clipit.data import shard_format
from clipit.data.text import load_tokenizer

WORDS = "un una due tre gatto gatti cane cani rosso rossa blu verde a sinistra destra su sfondo nero foto di".split()
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def save_tokenizer(folder: Path) -> Path:
    # `vocab=` (a dict): transformers 5 silently ignores `vocab_file=`.
    vocab = {token: i for i, token in enumerate(SPECIALS + WORDS)}
    BertTokenizer(vocab=vocab, do_lower_case=True).save_pretrained(folder)
    return folder


def tokenizer(folder: Path):
    return load_tokenizer(save_tokenizer(folder))


def image_for(number: int, side: int = 40) -> np.ndarray:
    """A distinct image per number: a colour from the number plus a bright square at a position."""
    rng = np.random.default_rng(number)
    image = np.empty((side, side + 8, 3), np.uint8)
    image[:] = rng.integers(0, 200, 3)
    top, left = rng.integers(0, side // 2, 2)
    image[top : top + side // 3, left : left + side // 3] = 255
    return image


def caption_for(number: int) -> str:
    # Repeats on purpose (every 7th number shares a caption): the loader must give them equal ids.
    words = ["un gatto rosso", "due cani blu", "una foto di un cane", "tre gatti", "un cane verde"]
    side = ("a sinistra", "a destra", "su sfondo nero")[number % 3]
    return f"{words[number % 7 % len(words)]} {side}"


def write_shards(
    folder: Path,
    counts: list[int],
    *,
    split: str = "train",
    row_group_size: int = 8,
    corrupt: dict[int, bytes] | None = None,
) -> list[str]:
    """Shards with `counts[i]` rows each; row n (global) has key f"k{n:04d}". Returns the keys in order.

    `corrupt` replaces the image bytes of some global rows (truncated JPEG, garbage, empty...).
    """
    folder.mkdir(parents=True, exist_ok=True)
    corrupt = corrupt or {}
    keys, number = [], 0
    for shard, count in enumerate(counts):
        rows = []
        for _ in range(count):
            image = image_for(number)
            data = corrupt.get(number, simplejpeg.encode_jpeg(image, quality=95))
            key = f"k{number:04d}"
            rows.append(
                {
                    "key": key,
                    "source": "test",
                    "caption": caption_for(number),
                    "caption_en": None,
                    "image": data,
                    "width": image.shape[1],
                    "height": image.shape[0],
                    "image_sha256": hashlib.sha256(data).hexdigest(),
                    "meta": "{}",
                }
            )
            keys.append(key)
            number += 1
        table = pa.Table.from_pylist(rows, schema=shard_format.SHARD_SCHEMA)
        shard_format.write_shard(
            table, folder / shard_format.shard_name(split, shard), row_group_size=row_group_size
        )
    return keys
