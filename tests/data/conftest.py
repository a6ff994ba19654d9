"""Fixtures shared by the data tests: a tiny synthetic source folder, generated once per session."""

from __future__ import annotations

import pytest

from clipit.data import synthetic
from tests.support.synthetic_source import tiny_synthetic_config


@pytest.fixture(scope="session")
def synthetic_source(tmp_path_factory):
    """A generated synthetic source folder (read-only for tests: copy it before changing anything)."""
    out = tmp_path_factory.mktemp("synthetic") / "source"
    synthetic.generate(tiny_synthetic_config(), out)
    return out
