"""Fixture of the trainer tests: one tiny two-phase run on the tiny shards, built once per session
(its settings: tests/support/tiny_train.py; the shards: tests/conftest.py)."""

from __future__ import annotations

import jax
import pytest

from clipit.config import load_config
from tests.support.tiny_train import run_overrides


@pytest.fixture(scope="session")
def tiny_run(tiny_shards, tmp_path_factory):
    from clipit.train.loop import train_and_evaluate

    out = tmp_path_factory.mktemp("run") / "tiny"
    config = load_config(None, run_overrides(tiny_shards, out))
    summary = train_and_evaluate(config, devices=jax.devices()[:1])
    return out, config, summary
