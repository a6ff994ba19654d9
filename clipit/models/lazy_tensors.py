"""safetensors files read tensor by tensor, on demand, with plain file reads.

The header (names, dtypes, shapes, offsets) is read when the files are opened, so a whole checkpoint
can be checked against a model before any weight is read, and a caller reads only the part it needs.
Reads use `pread` into a fresh buffer rather than a memory map: pages of a mapped file count towards
the process's resident memory for as long as the map lives, a second copy of every weight loaded.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipit.errors import ModelError

DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "BF16": np.uint16}  # BF16: raw bits
MAX_HEADER = 100 * 2**20  # what the safetensors reference implementation accepts


@dataclass(frozen=True)
class _Entry:
    file: Path
    key: str  # the name in the file
    dtype: str
    shape: tuple[int, ...]
    start: int  # absolute byte offsets in the file
    end: int


class LazyTensors(Mapping):
    """Float32 numpy tensors of safetensors files by name, each read when asked for.

    `shape(name)` answers from the header. `renamed` gives a view under other names."""

    def __init__(self, entries: dict[str, _Entry]):
        self._entries = entries

    @classmethod
    def open(cls, files: list[Path], rename=lambda key: key) -> LazyTensors:
        """The tensors of `files` (a checkpoint's shards), named `rename(name in the file)`."""
        entries = {}
        for file in files:
            for key, entry in _read_header(file).items():
                entries[rename(key)] = entry
        return cls(entries)

    def __getitem__(self, name: str) -> np.ndarray:
        entry = self._entries[name]
        try:
            with open(entry.file, "rb") as f:
                data = os.pread(f.fileno(), entry.end - entry.start, entry.start)
        except OSError as exc:
            raise ModelError(f"{entry.file}: cannot read tensor {entry.key} ({exc})") from exc
        if len(data) != entry.end - entry.start:
            raise ModelError(
                f"{entry.file}: tensor {entry.key} is cut short", hint="re-download the checkpoint"
            )
        values = np.frombuffer(data, np.dtype(DTYPES[entry.dtype]).newbyteorder("<"))
        if entry.dtype == "BF16":  # the high half of a float32
            values = (values.astype(np.uint32) << 16).view(np.float32)
        return values.astype(np.float32, copy=False).reshape(entry.shape)

    def __contains__(self, name) -> bool:  # Mapping's own would read the tensor
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._entries[name].shape

    def renamed(self, names: dict[str, str]) -> LazyTensors:
        """A view with tensor `old` under `new`, for each new -> old of `names`."""
        return LazyTensors({new: self._entries[old] for new, old in names.items()})


def _read_header(file: Path) -> dict[str, _Entry]:
    """Name -> entry of one safetensors file: 8 bytes of header length, the JSON header, the data."""
    try:
        size = file.stat().st_size
        with open(file, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8).ljust(8, b"\0"))
            if not 0 < length <= min(MAX_HEADER, size - 8):
                raise ValueError(f"header length {length} does not fit a {size}-byte file")
            header = json.loads(f.read(length))
        entries = {}
        for key, info in header.items():
            if key == "__metadata__":
                continue
            if info["dtype"] not in DTYPES:
                raise ValueError(f"tensor {key} has dtype {info['dtype']}, not a float type")
            begin, end = (8 + length + int(x) for x in info["data_offsets"])
            shape = tuple(int(n) for n in info["shape"])
            itemsize = 2 if info["dtype"] == "BF16" else np.dtype(DTYPES[info["dtype"]]).itemsize
            if end > size or end - begin != itemsize * int(np.prod(shape, dtype=np.int64)):
                raise ValueError(f"tensor {key} lies outside the file or has the wrong byte count")
            entries[key] = _Entry(file, key, info["dtype"], shape, begin, end)
        return entries
    except (OSError, ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise ModelError(
            f"{file}: cannot read safetensors ({exc})", hint="re-download the checkpoint"
        ) from exc
