"""Shards to device-ready batches, on grain: one entry point, `make_loader`.

A batch is a dict of numpy arrays (per process: global_batch_size / process_count rows):

    pixel_values    [B, S, S, 3] uint8 RGB, NOT normalised: preprocess.train_transform (training with
                    augmentation) or preprocess.eval_resize_crop (validation, or augment off)
    input_ids       [B, L] int32, padded/truncated to max_text_length
    attention_mask  [B, L] int32
    caption_id      [B] int64, a hash of the tokens: equal ids = identical captions (positives)
    valid           [B] bool, False for padding (eval's last batch) and for corrupt images
    key             [B] str, only with `with_keys=True`

How it runs: `grain.MapDataset.range(step, ...)` maps a step number to a whole batch (`BatchMaker`),
then `to_iter_dataset` (a prefetch thread) and, with `settings.workers > 0`, `mp_prefetch` (worker
processes; worker i makes steps i, i+W, ...; grain interleaves them back in order and hands the arrays
over in shared memory). Because a batch is a pure function of its step number, the batches are the
same for any number of workers, and the loader position is just the next step (`get_state`).

Pixels stay uint8 on purpose: a batch of 64 at 224 px is 9.6 MB instead of 38.5 MB in float32, which
is what a worker process writes into shared memory (page faults and all) and what goes to the device.
The model normalises them on the device (`DualEncoder.image_features` takes uint8 or normalised
floats; `clipit.models.pixels.normalize_pixels` gives exactly `preprocess.normalize`'s float32 values).

A corrupt image does not stop training: its slot is filled with a copy of another sample of the same
batch (same caption_id, so a multi-positive loss treats it consistently), marked valid=False, counted
in `Loader.corrupt` and named once in a warning.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from clipit.config.data import LoaderSettings
from clipit.console import warn
from clipit.data import decode, loader_batch, preprocess, text
from clipit.data.loader_batch import BatchMaker
from clipit.data.loader_source import BatchPlan, ShardIndex
from clipit.errors import DataError
from clipit.parent_watch import exit_with_parent

STATE_VERSION = 1


class Loader(Iterator[dict[str, np.ndarray]]):
    """Iterate for batches; `get_state()` / `set_state()` save and restore the exact position."""

    def __init__(self, maker: BatchMaker, settings: LoaderSettings):
        self.maker = maker
        self.plan = maker.plan
        self.settings = settings
        self.step = 0  # the next step this loader yields
        self.wait_seconds = 0.0  # time blocked in next(), for callers (the trainer times its own feed)
        self.corrupt = 0
        self._iterator: Any = None
        self._pipeline_step = 0  # the step the grain pipeline yields next
        self._named: set[int] = set()

    # -------------------------------------------------------------------------------- iteration
    @property
    def steps_per_epoch(self) -> int:
        return self.plan.steps_per_epoch

    @property
    def epoch(self) -> int:
        return self.step // self.plan.steps_per_epoch

    @property
    def batch_size(self) -> int:
        return self.plan.batch_size

    def __len__(self) -> int:
        if self.plan.num_steps is None:
            raise TypeError("a training loader is endless; see steps_per_epoch")
        return self.plan.num_steps

    def __next__(self) -> dict[str, np.ndarray]:
        if self.plan.num_steps is not None and self.step >= self.plan.num_steps:
            raise StopIteration
        if self._iterator is None:
            self._iterator, self._pipeline_step = self._build(self.step), self.step
        started = time.perf_counter()
        batch = next(self._iterator)
        self.wait_seconds += time.perf_counter() - started
        self.step += 1
        self._pipeline_step += 1
        self._report(batch.pop("_corrupt"))
        return batch

    def rewind(self) -> None:
        """Back to step 0: another validation pass (worker processes kept after a complete pass)."""
        passes_done = self.plan.num_steps and self._pipeline_step % self.plan.num_steps == 0
        if self.plan.train or not passes_done:
            self.close()
        self.step = 0  # an eval pipeline is endless and repeats the pass, so it simply goes on

    def _build(self, start: int):
        import grain

        # Endless even for eval (the pass repeats): grain then never meets the end of its range, whose
        # handling in worker processes left shared-memory blocks behind, and `rewind` keeps the workers.
        dataset = grain.MapDataset.range(start, sys.maxsize).map(self.maker)
        # One thread (the maker's caches are not shared), and none inside worker processes: their
        # output queue already buffers `prefetch` batches, and a batch held by a thread of a stopping
        # worker would leave its shared-memory block behind.
        threads = 1 if self.settings.prefetch > 0 and self.settings.workers == 0 else 0
        dataset = dataset.to_iter_dataset(
            grain.ReadOptions(num_threads=threads, prefetch_buffer_size=self.settings.prefetch)
        )
        if self.settings.workers > 0:
            _mark_absl_flags_parsed()
            # Small arrays (token ids, masks) travel pickled: a shared-memory block each costs more.
            options = grain.experimental.DatasetOptions(min_shm_size=1 << 16)
            dataset = grain.experimental.WithOptionsIterDataset(dataset, options)
            dataset = dataset.mp_prefetch(
                grain.MultiprocessingOptions(
                    num_workers=self.settings.workers, per_worker_buffer_size=max(1, self.settings.prefetch)
                ),
                worker_init_fn=functools.partial(_worker_init, parent_pid=os.getpid()),
            )
        return iter(dataset)

    def _report(self, corrupt: np.ndarray) -> None:
        self.corrupt += len(corrupt)
        for row in corrupt.tolist():
            if row not in self._named:
                self._named.add(row)
                warn(
                    f"unreadable image at {self.plan.index.describe(row)}: replaced in its batch (valid=False)"
                )

    # ------------------------------------------------------------------------------ checkpointing
    def get_state(self) -> dict[str, Any]:
        """The position as plain JSON values: the next step plus what it is only valid for."""
        return {"version": STATE_VERSION, "step": self.step, **self._fingerprint()}

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from a saved position; refuses one saved for other data, batch size or seed."""
        expected = self._fingerprint()
        if state.get("version") != STATE_VERSION:
            raise DataError(f"loader state version {state.get('version')!r} (expected {STATE_VERSION})")
        different = [name for name, value in expected.items() if state.get(name) != value]
        if different:
            detail = ", ".join(f"{n}: saved {state.get(n)!r}, now {expected[n]!r}" for n in different)
            raise DataError(
                f"the saved loader position does not match this data loader ({detail})",
                "resume with the same shards, batch size, seed and process count, or start a new run",
            )
        self.close()
        self.step = int(state["step"])

    def _fingerprint(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "rows": plan.index.num_rows,
            "shards": [Path(f).name for f in plan.index.files],
            "batch_size": plan.batch_size,
            "process_count": plan.process_count,
            "process_index": plan.process_index,
            "seed": plan.seed,
            "train": plan.train,
            "shuffle_window": plan.shuffle_window,
        }

    def close(self) -> None:
        """Stop worker processes and prefetch threads (a later next() starts them again)."""
        if self._iterator is not None and hasattr(self._iterator, "close"):
            self._iterator.close()
        self._iterator = None

    def __enter__(self) -> Loader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def make_loader(
    shards_dir: str | Path,
    split: str,
    *,
    global_batch_size: int,
    tokenizer: Any,
    max_text_length: int,
    image_size: int,
    settings: LoaderSettings,
    seed: int = 0,
    process_index: int = 0,
    process_count: int = 1,
    train: bool = True,
    with_keys: bool = False,
    max_pixels: int = decode.DEFAULT_MAX_PIXELS,
) -> Loader:
    """The loader of one split: endless shuffled epochs (train=True) or one ordered, padded pass.

    `tokenizer` is a loaded HF tokenizer or a folder / hub id for `text.load_tokenizer`.
    """
    if isinstance(tokenizer, str | Path):
        tokenizer = text.load_tokenizer(tokenizer)
    if not 0 <= process_index < process_count:
        raise DataError(f"process_index {process_index} is not in [0, {process_count})")
    if global_batch_size % process_count:
        raise DataError(
            f"global batch size {global_batch_size} is not divisible by {process_count} processes",
            "set train.batch_size to a multiple of the process count",
        )
    augment = None
    if train and settings.augment:
        augment = preprocess.TrainAugment(
            size=image_size,
            crop_scale=(settings.crop_scale_min, 1.0),
            flip=settings.flip,
            color_jitter=settings.color_jitter,
        )
    plan = BatchPlan(
        index=ShardIndex.scan(shards_dir, split),
        batch_size=global_batch_size // process_count,
        seed=seed,
        process_index=process_index,
        process_count=process_count,
        train=train,
        shuffle_window=settings.shuffle_window,
    )
    maker = BatchMaker(plan, tokenizer, max_text_length, image_size, augment, with_keys, max_pixels)
    return Loader(maker, settings)


def _mark_absl_flags_parsed() -> None:
    # grain's worker start-up reads its absl flags; an application that never ran absl.app (ours:
    # Typer) has unparsed flags, and reading them raises. Marking them parsed keeps their defaults.
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def _worker_init(worker_index: int, worker_count: int, *, parent_pid: int) -> None:
    # After `kill -9` of training, grain's workers would live on (each holding a few hundred MB and the
    # shared-memory batches it made); they exit instead, and multiprocessing's resource tracker, left
    # alone, then unlinks their /dev/shm segments.
    exit_with_parent(parent_pid)
    import cv2

    cv2.setNumThreads(1)  # one core per worker: OpenCV's own thread pool would oversubscribe
    loader_batch.use_shared_memory_output()
