"""Validation during training: loss and in-batch retrieval on the same first val batches every time.

Validation is never skipped in silence. A val split with fewer rows than `train.batch_size` is
validated as one smaller batch (the most rows that split evenly over the devices and processes), a
split too small for its recalls to mean much is warned about, and a run without val rows (for
instance `data.shards.val_fraction = 0`) says "no validation". Each note is given once, when the run's
`Validation` is built.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import jax
import numpy as np

from clipit.config import Config
from clipit.console import info, warn
from clipit.data.shard_format import count_rows
from clipit.train.feeds import full_batches, shard_loader
from clipit.train.mesh import put_batch, to_host

# Below this many validated pairs a recall moves by several points between evaluations from noise
# alone (its standard error at 50% is 0.5 / sqrt(n) = 3.5 points at n = 200).
MIN_MEANINGFUL_ROWS = 200


def validation_batch_size(val_rows: int, batch_size: int, unit: int) -> int:
    """The val batch: `batch_size`, or when fewer rows exist the most rows that are a multiple of
    `unit` (devices and processes must split a batch evenly); 0 when not even `unit` rows exist."""
    if val_rows >= batch_size:
        return batch_size
    return val_rows // unit * unit


class Validation:
    """The run's validation: its loader is built once (a val split too small for one batch gets none)
    and rewound to the first batch before each pass, so every pass sees the same batches."""

    def __init__(self, config: Config, data_dir: Path, tokenizer, mesh) -> None:
        self.data_dir, self.mesh = data_dir, mesh
        self.val_batches = config.train.val_batches
        self.loader = None
        rows = count_rows(data_dir, "val")
        unit = math.lcm(int(mesh.devices.size), jax.process_count())
        batch_size = validation_batch_size(rows, config.train.batch_size, unit)
        if batch_size == 0:
            if rows == 0:
                info(
                    f"no validation: {data_dir} has no val rows (build-shards with data.shards.val_fraction > 0 makes some)"
                )
            else:
                warn(f"no validation: {data_dir} has {rows} val rows, fewer than the {unit} devices")
            return
        validated = min(rows // batch_size, self.val_batches) * batch_size
        if batch_size < config.train.batch_size:
            warn(
                f"validating on one batch of {batch_size} rows: {data_dir} has only {rows} val rows "
                f"(train.batch_size {config.train.batch_size}); in-batch recalls are over {batch_size} candidates"
            )
        elif validated < MIN_MEANINGFUL_ROWS:
            warn(
                f"validating on {validated} rows of {data_dir}: too few for the recalls to mean "
                f"much; raise data.shards.val_fraction or train.val_batches"
            )
        if batch_size != config.train.batch_size:
            config = config.model_copy(
                update={"train": config.train.model_copy(update={"batch_size": batch_size})}
            )
        self.loader = shard_loader(
            config,
            data_dir,
            "val",
            tokenizer=tokenizer,
            settings=config.data.loader,
            seed=config.train.seed,
            train=False,
        )

    def run(self, eval_step, state) -> dict[str, float] | None:
        """Mean loss and in-batch retrieval over the first `train.val_batches` val batches; None without any."""
        if self.loader is None:
            return None
        self.loader.rewind()
        totals: dict[str, float] = {}
        batches = 0
        for local in full_batches(self.loader):
            local["image_id"] = image_ids(local["pixel_values"])
            for key, value in to_host(eval_step(state, put_batch(self.mesh, local))).items():
                totals[key] = totals.get(key, 0.0) + float(value)
            batches += 1
            if batches >= self.val_batches:
                break
        if not batches:
            warn(
                f"no validation at this step: no val batch of {self.data_dir} was complete (unreadable rows?)"
            )
            return None
        return {k: v / batches for k, v in totals.items()}

    def close(self) -> None:
        if self.loader is not None:
            self.loader.close()


def image_ids(pixels: np.ndarray) -> np.ndarray:
    """An id per row from its pixels: rows showing one image (its several captions) get equal ids, so
    the in-batch recalls count that image once (validation pixels are not augmented)."""
    return np.array(
        [
            int.from_bytes(
                hashlib.blake2b(np.ascontiguousarray(row).tobytes(), digest_size=8).digest(), "little"
            )
            >> 1
            for row in pixels
        ],
        dtype=np.int64,
    )
