"""Fixtures shared by the data tests: a tiny synthetic source folder, generated once per session."""

from __future__ import annotations

import pytest

from clipit.config.data import SyntheticSource
from clipit.data import synthetic


def tiny_synthetic_config(**changes) -> SyntheticSource:
    """A synthetic dataset small enough for a test: a few dozen images, a few per zero-shot class."""
    values = {"n": 48, "seed": 0, "samples_per_shard": 20, "zeroshot_per_class": 3, "retrieval_images": 6}
    return SyntheticSource(**{**values, **changes})


@pytest.fixture(scope="session")
def synthetic_source(tmp_path_factory):
    """A generated synthetic source folder (read-only for tests: copy it before changing anything)."""
    out = tmp_path_factory.mktemp("synthetic") / "source"
    synthetic.generate(tiny_synthetic_config(), out)
    return out
