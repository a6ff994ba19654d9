"""A synthetic dataset small enough for a test."""

from __future__ import annotations

from clipit.config.data import SyntheticSource


def tiny_synthetic_config(**changes) -> SyntheticSource:
    """A synthetic dataset small enough for a test: a few dozen images, a few per zero-shot class."""
    values = {"n": 48, "seed": 0, "samples_per_shard": 20, "zeroshot_per_class": 3, "retrieval_images": 6}
    return SyntheticSource(**{**values, **changes})
