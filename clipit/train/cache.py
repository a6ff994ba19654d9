"""Frozen-tower cache: run both frozen towers once per sample, then train the heads from their outputs.

In a heads-only phase with augmentation off, the towers' pooled outputs never change, yet the original
recipe recomputed them every step: almost all of the phase's compute. Here one deterministic pass over
the train split stores them on the host, and the phase draws its batches from that store. Each process
caches the rows its own loader yields, so this works unchanged across hosts.

Batches are sampled statelessly from (seed, phase, step): epoch e uses a fixed permutation of the rows,
so a resumed run draws exactly the batches the interrupted one would have.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import jax
import numpy as np

from clipit.errors import DataError
from clipit.train.mesh import put_batch

CACHE_KEYS = ("image_pooled", "text_pooled", "caption_id")


def local_rows(x: jax.Array) -> np.ndarray:
    """This process's rows of a batch-sharded array, in order."""
    shards = sorted(x.addressable_shards, key=lambda s: s.index[0].start or 0)
    seen, parts = set(), []
    for shard in shards:
        start = shard.index[0].start or 0
        if start not in seen:  # replicas of the same rows on several local devices
            seen.add(start)
            parts.append(np.asarray(shard.data))
    return np.concatenate(parts)


@dataclass
class FeatureCache:
    image_pooled: np.ndarray
    text_pooled: np.ndarray
    caption_id: np.ndarray

    def __len__(self) -> int:
        return len(self.caption_id)

    def batch(self, *, seed: int, phase: int, step: int, local_batch: int) -> dict[str, np.ndarray]:
        """The rows this process feeds at `step` of the phase."""
        rows = len(self)
        positions = np.arange(step * local_batch, (step + 1) * local_batch)
        index = np.empty(local_batch, np.int64)
        for epoch in np.unique(positions // rows):
            order = np.random.default_rng([seed, phase, int(epoch)]).permutation(rows)
            in_epoch = positions // rows == epoch
            index[in_epoch] = order[positions[in_epoch] % rows]
        return {
            "image_pooled": self.image_pooled[index],
            "text_pooled": self.text_pooled[index],
            "caption_id": self.caption_id[index],
        }


def build_cache(
    features: Callable, params, rest, batches: Iterable[dict[str, np.ndarray]], mesh
) -> FeatureCache:
    """One deterministic pass of the frozen towers over `batches` (the train split, no augmentation).

    Corrupt images (valid=False in an ordered pass) are left out with the padding. The loader's uint8
    pixels go to the device as they are: the model normalises them there.
    """
    parts: dict[str, list[np.ndarray]] = {k: [] for k in CACHE_KEYS}
    for local in batches:
        inputs = {k: local[k] for k in ("pixel_values", "input_ids", "attention_mask")}
        out = features(params, rest, put_batch(mesh, inputs))
        valid = np.asarray(local["valid"], bool)  # the padding of the last batch is not data
        parts["image_pooled"].append(local_rows(out["image_pooled"])[valid].astype(np.float32))
        parts["text_pooled"].append(local_rows(out["text_pooled"])[valid].astype(np.float32))
        parts["caption_id"].append(np.asarray(local["caption_id"])[valid])
    if not parts["caption_id"]:
        raise DataError("the train split yielded no batch to cache", "add data or lower train.batch_size")
    return FeatureCache(**{k: np.concatenate(v) for k, v in parts.items()})
