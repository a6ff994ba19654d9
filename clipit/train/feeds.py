"""Where a phase's batches come from: the shard loader, or the frozen-tower cache.

Both give this process's share of each global batch as numpy arrays and expose `get_state` /
`set_state`, which the checkpoint stores so that a resumed run continues with the very next batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils

from clipit.config import Config
from clipit.config.data import LoaderSettings
from clipit.data.loader import make_loader
from clipit.train.cache import FeatureCache


def shard_loader(
    config: Config,
    data_dir: Path,
    split: str,
    *,
    tokenizer,
    settings: LoaderSettings,
    seed: int,
    train: bool,
):
    return make_loader(
        data_dir,
        split,
        global_batch_size=config.train.batch_size,
        tokenizer=tokenizer,
        max_text_length=config.model.max_text_length,
        image_size=config.model.vision.image_size,
        settings=settings,
        seed=seed,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        train=train,
    )


MODEL_INPUTS = ("pixel_values", "input_ids", "attention_mask", "caption_id")


def model_inputs(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What the step consumes (the loader also yields `valid` and, on request, keys)."""
    return {k: batch[k] for k in MODEL_INPUTS}


class LoaderFeed:
    """Endless training batches from the shard loader (it reshuffles every epoch).

    A corrupt image's slot holds a copy of another sample of the batch (the loader's choice), so the
    training batch keeps its shape and its positives stay consistent.
    """

    def __init__(self, loader) -> None:
        self.loader = loader

    def next(self) -> dict[str, np.ndarray]:
        return model_inputs(next(self.loader))

    def get_state(self) -> Any:
        return self.loader.get_state()

    def set_state(self, state: Any) -> None:
        self.loader.set_state(state)

    def close(self) -> None:
        self.loader.close()


def full_batches(loader) -> Iterator[dict[str, np.ndarray]]:
    """An ordered pass's batches, minus those not fully valid (validation compares full batches).

    A batch is skipped on every process or on none: one process's share can hold a padded row or a
    corrupt image while another's does not, and processes that ran different numbers of eval steps
    would wait for each other forever in the step's collectives.
    """
    for batch in loader:
        full = bool(np.all(batch["valid"]))
        if jax.process_count() > 1:
            full = bool(np.all(multihost_utils.process_allgather(np.array(full))))
        if full:
            yield model_inputs(batch)


class CacheFeed:
    """Training batches drawn from a FeatureCache; the state is just the step."""

    def __init__(self, cache: FeatureCache, *, seed: int, phase: int, local_batch: int) -> None:
        self.cache, self.seed, self.phase, self.local_batch = cache, seed, phase, local_batch
        self.step = 0

    def next(self) -> dict[str, np.ndarray]:
        batch = self.cache.batch(
            seed=self.seed, phase=self.phase, step=self.step, local_batch=self.local_batch
        )
        self.step += 1
        return batch

    def get_state(self) -> Any:
        return {"cache_step": self.step}

    def set_state(self, state: Any) -> None:
        self.step = int(state["cache_step"])

    def close(self) -> None:
        pass
