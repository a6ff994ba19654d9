"""One step number -> one batch: read the plan's rows, decode, transform, tokenise (loader internals).

Runs in the loader's worker processes (pickled there once, then keeping its own file and row-group
caches), or in the training process when `workers = 0`. See clipit/data/loader.py for the batch format.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from clipit.data import decode, preprocess, text
from clipit.data.loader_source import PAD, BatchPlan, ShardReader
from clipit.errors import DataError

_in_worker = False  # set in loader worker processes (see use_shared_memory_output)


def use_shared_memory_output() -> None:
    """In a worker process: build pixel batches in shared memory, so grain passes them on uncopied."""
    global _in_worker
    _in_worker = True


def _pixel_buffer(shape: tuple[int, ...]) -> np.ndarray:
    """uint8: a quarter of float32's bytes to write to shared memory and to move to the device."""
    if _in_worker:
        # grain hands a SharedMemoryArray over by name; a plain array would be copied into a fresh one
        # (about a fifth of a worker's time when batches were float32, in our measurements).
        from grain.multiprocessing import SharedMemoryArray

        return SharedMemoryArray(shape, np.uint8)
    return np.empty(shape, np.uint8)


class BatchMaker:
    """step -> batch dict; sent (pickled) to every worker process, which keeps its own caches."""

    def __init__(
        self,
        plan: BatchPlan,
        tokenizer: Any,
        max_text_length: int,
        image_size: int,
        augment: preprocess.TrainAugment | None,
        with_keys: bool,
        max_pixels: int,
    ):
        self.plan = plan
        self.reader = ShardReader(plan.index, cache_blocks=plan.shuffle_window + 2)
        self.tokenizer = tokenizer
        self.max_text_length = max_text_length
        self.image_size = image_size
        self.augment = augment
        self.with_keys = with_keys
        self.max_pixels = max_pixels

    def __call__(self, step: int) -> dict[str, np.ndarray]:
        rows, epoch = self.plan.rows(int(step))
        size, count = self.image_size, len(rows)
        pixels = _pixel_buffer((count, size, size, 3))
        pixels[rows == PAD] = 0
        captions, keys = [""] * count, [""] * count
        good = np.zeros(count, bool)
        corrupt = []
        for i, row in enumerate(rows):
            if row == PAD:
                continue
            key, caption, data = self.reader.get(int(row))
            keys[i] = key
            try:
                image = decode.decode_image(data, max_pixels=self.max_pixels, name=key)
            except DataError:
                corrupt.append(int(row))
                pixels[i] = 0
                continue
            if self.augment is None:
                preprocess.eval_resize_crop(image, size, out=pixels[i])
            else:
                rng = preprocess.sample_rng(self.plan.seed, epoch, key)
                _, flipped = preprocess.train_transform(image, self.augment, rng, out=pixels[i])
                caption = preprocess.swap_left_right(caption) if flipped else caption
            captions[i], good[i] = caption, True
        if corrupt and self.plan.train:
            self._fill_from_neighbours(good, pixels, captions, keys)
        input_ids, attention_mask = text.tokenize(self.tokenizer, captions, self.max_text_length)
        batch = {
            "pixel_values": pixels,
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "caption_id": text.caption_ids(input_ids, attention_mask),
            "valid": good,
            "_corrupt": np.array(corrupt, np.int64),
        }
        if self.with_keys:
            batch["key"] = np.array(keys, dtype=str)
        return batch

    @staticmethod
    def _fill_from_neighbours(
        good: np.ndarray, pixels: np.ndarray, captions: list[str], keys: list[str]
    ) -> None:
        """Replace each failed slot by the next good sample (cyclically): fixed shapes, no crash."""
        good_slots = np.flatnonzero(good)
        if len(good_slots) == 0:
            raise DataError(
                f"every image of a training batch failed to decode (first: {keys[0]})", "rebuild the shards"
            )
        for i in np.flatnonzero(~good):
            source = good_slots[np.searchsorted(good_slots, i) % len(good_slots)]
            pixels[i], captions[i], keys[i] = pixels[source], captions[source], keys[source]
