"""Where each batch's rows come from: the shard index, the per-step plan and a cached row reader.

Why not a plain global shuffle: Parquet can only read a whole column chunk of a row group, so reading
one random row costs a whole row group (~256 images, a few MB): 20x the JPEG decode. The plan
therefore shuffles in two levels, as webdataset-style loaders do:

1. each epoch, the row groups ("blocks") of the split are permuted with a seed shared by all processes,
   and process p takes the p-th contiguous 1/P of the rows in that block order (balanced to one row;
   at most two row groups are shared with a neighbour, so each process reads only its share);
2. the process's blocks are cut into windows of `shuffle_window` blocks and the rows inside a window are
   permuted. A reader that caches `shuffle_window` row groups then reads each one once per window.

Everything is a pure function of (seed, epoch, process_index, process_count): a step number is a
complete position, which is what makes the loader state exact and tiny.

Validation/eval plans keep the shard order, split the same way into contiguous ranges, and pad the
last batch (row id -1) so that every process yields the same number of equally-shaped batches.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipit.data import shard_format
from clipit.errors import DataError

PAD = -1  # row id of a padding slot in an eval batch
_COLUMNS = ["key", "caption", "image"]


@dataclass(frozen=True, eq=False)
class ShardIndex:
    """The row groups of one split: which file, which group, how many rows (read from the footers)."""

    files: tuple[str, ...]
    block_file: np.ndarray  # [n_blocks] index into files
    block_group: np.ndarray  # [n_blocks] row group inside the file
    block_start: np.ndarray  # [n_blocks + 1] first global row of each block (cumulative)

    @classmethod
    def scan(cls, folder: str | Path, split: str) -> ShardIndex:
        paths = shard_format.list_shards(folder, split)
        if not paths:
            raise DataError(
                f"{folder}: no {split} shards ({split}-00000.parquet, ...)", "run `clipit build-shards` first"
            )
        block_file, block_group, block_rows = [], [], []
        for file_number, path in enumerate(paths):
            metadata = shard_format.open_shard(path).metadata
            for group in range(metadata.num_row_groups):
                block_file.append(file_number)
                block_group.append(group)
                block_rows.append(metadata.row_group(group).num_rows)
        starts = np.concatenate([[0], np.cumsum(block_rows, dtype=np.int64)])
        if starts[-1] == 0:
            raise DataError(f"{folder}: the {split} shards hold no rows", "rebuild the shards with more data")
        return cls(
            tuple(str(p.resolve()) for p in paths), np.array(block_file), np.array(block_group), starts
        )

    @property
    def num_rows(self) -> int:
        return int(self.block_start[-1])

    @property
    def num_blocks(self) -> int:
        return len(self.block_file)

    def describe(self, row: int) -> str:
        """'train-00003.parquet row 17': where a global row lives, for messages."""
        block = int(np.searchsorted(self.block_start, row, side="right") - 1)
        file_number = self.block_file[block]
        first_block_of_file = int(np.searchsorted(self.block_file, file_number))
        return f"{Path(self.files[file_number]).name} row {row - int(self.block_start[first_block_of_file])}"


@dataclass(frozen=True, eq=False)
class BatchPlan:
    """Which global rows form step `t` of this process (pure arithmetic, cached per epoch)."""

    index: ShardIndex
    batch_size: int  # per process
    seed: int
    process_index: int
    process_count: int
    train: bool
    shuffle_window: int

    def __post_init__(self) -> None:
        if self.train and self.steps_per_epoch == 0:
            raise DataError(
                f"{self.index.num_rows} training rows cannot fill one global batch of "
                f"{self.batch_size * self.process_count}",
                "lower train.batch_size or add data",
            )

    @property
    def steps_per_epoch(self) -> int:
        rows = self.index.num_rows // self.process_count  # the smallest share; the remainder is dropped
        if self.train:
            return rows // self.batch_size
        largest = math.ceil(self.index.num_rows / self.process_count)
        return math.ceil(largest / self.batch_size)

    @property
    def num_steps(self) -> int | None:
        """Steps the loader yields: None (endless) when training, one pass otherwise."""
        return None if self.train else self.steps_per_epoch

    def rows(self, step: int) -> tuple[np.ndarray, int]:
        """(global row ids [batch_size], epoch) of one step; PAD marks padding in eval plans."""
        epoch, within = divmod(step, self.steps_per_epoch)
        order = self._epoch_order(epoch if self.train else 0)  # an eval pass never changes
        rows = order[within * self.batch_size : (within + 1) * self.batch_size]
        if len(rows) < self.batch_size:
            rows = np.concatenate([rows, np.full(self.batch_size - len(rows), PAD, np.int64)])
        return rows, epoch

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_cache"}  # workers compute their own

    def _epoch_order(self, epoch: int) -> np.ndarray:
        cache = self.__dict__.setdefault("_cache", {})  # per process (and worker); not part of equality
        if epoch not in cache:
            cache.clear()
            cache[epoch] = self._compute_order(epoch)
        return cache[epoch]

    def _compute_order(self, epoch: int) -> np.ndarray:
        index, count = self.index, self.process_count
        blocks = np.arange(index.num_blocks)
        if self.train:
            blocks = np.random.default_rng([self.seed & 0xFFFFFFFF, epoch]).permutation(blocks)
        sizes = np.diff(index.block_start)[blocks]
        ends = np.cumsum(sizes)
        lo = self.process_index * index.num_rows // count
        hi = (self.process_index + 1) * index.num_rows // count
        pieces = []  # this process's rows, block by block, in block order
        for block, end, size in zip(blocks, ends, sizes, strict=True):
            start = end - size
            if end <= lo or start >= hi:
                continue
            first = index.block_start[block] + max(lo - start, 0)
            last = index.block_start[block] + min(hi, end) - start
            pieces.append(np.arange(first, last, dtype=np.int64))
        if not pieces:
            return np.zeros(0, np.int64)
        if not self.train:
            return np.concatenate(pieces)
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, epoch, 1 + self.process_index])
        windows = [
            rng.permutation(np.concatenate(pieces[i : i + self.shuffle_window]))
            for i in range(0, len(pieces), self.shuffle_window)
        ]
        return np.concatenate(windows)[: self.steps_per_epoch * self.batch_size]


class ShardReader:
    """Rows by global id, reading whole row groups and keeping the last `cache_blocks` of them."""

    def __init__(self, index: ShardIndex, cache_blocks: int):
        self.index = index
        self.cache_blocks = max(1, cache_blocks)
        self._files: dict[int, object] = {}
        self._blocks: OrderedDict[int, tuple[list[str], list[str], np.ndarray, memoryview]] = OrderedDict()
        self.reads = 0  # row groups read from disk (the I/O a shuffle costs)

    def __getstate__(self) -> dict:
        # Sent to worker processes: without open files or cached row groups.
        return {"index": self.index, "cache_blocks": self.cache_blocks}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["index"], state["cache_blocks"])

    def get(self, row: int) -> tuple[str, str, memoryview]:
        """(key, caption, JPEG bytes) of one global row."""
        block = int(np.searchsorted(self.index.block_start, row, side="right") - 1)
        keys, captions, offsets, data = self._block(block)
        i = row - int(self.index.block_start[block])
        return keys[i], captions[i], data[offsets[i] : offsets[i + 1]]

    def _block(self, block: int):
        cached = self._blocks.get(block)
        if cached is not None:
            self._blocks.move_to_end(block)
            return cached
        file_number = int(self.index.block_file[block])
        if file_number not in self._files:
            self._files[file_number] = shard_format.open_shard(self.index.files[file_number])
        table = self._files[file_number].read_row_group(int(self.index.block_group[block]), columns=_COLUMNS)
        self.reads += 1
        images = table.column("image").combine_chunks()
        # Slicing the Arrow buffer avoids copying every image into a Python bytes object.
        offsets = np.frombuffer(images.buffers()[1], np.int32)[
            images.offset : images.offset + len(images) + 1
        ]
        data = memoryview(images.buffers()[2]).cast("B")
        cached = (table.column("key").to_pylist(), table.column("caption").to_pylist(), offsets, data)
        self._blocks[block] = cached
        while len(self._blocks) > self.cache_blocks:
            self._blocks.popitem(last=False)
        return cached
