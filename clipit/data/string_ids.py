"""64-bit ids of strings: how streamed stages keep what must be global (keys, image hashes, URLs).

A stage over millions of rows keeps one uint64 a row in a numpy array, not a set of Python strings
(about 8 bytes a row instead of 100 or more). Ids are the first 8 bytes of BLAKE2b, so they are the same
in every process and run. Two different strings share an id with a probability of about n^2 / 2^65
(3e-7 for 3.3M strings); where a false match would be an error (duplicate keys), callers confirm it
against the strings. 0 stands for a missing value (null or empty).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import pyarrow as pa

NONE = 0


def one(text: str | None) -> int:
    """The id of one string; NONE for None or ''."""
    if not text:
        return NONE
    value = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")
    return value or 1  # keep 0 for "missing"


def of(values: pa.Array | pa.ChunkedArray | Iterable[str | None]) -> np.ndarray:
    """The ids of many strings, as a uint64 array in the same order."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        values = values.to_pylist()
    return np.fromiter((one(v) for v in values), dtype=np.uint64)
