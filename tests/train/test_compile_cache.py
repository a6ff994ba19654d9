"""`clipit train` keeps its compiled steps in the user cache folder: a rerun of the same model and batch
(another seed, other data of the same shapes) reads them instead of compiling again. `train.compilation_cache=false`
writing nothing is checked by tests/train/test_train_lock.py's runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.tiny_train import tiny_overrides


def entries(cache: Path) -> set[str]:
    return {p.name for p in cache.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_a_second_run_reads_every_step_from_the_cache(tiny_shards, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env |= {
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
    }
    cache = tmp_path / "cache" / "clipit" / "jax"
    for name in ("first", "second"):
        items = tiny_overrides(
            tiny_shards, tmp_path / name, 'train.phases=[{name="all", steps=1}]', "train.export=false"
        )
        command = [
            sys.executable,
            "-m",
            "clipit.cli.main",
            "train",
            *[a for i in items for a in ("--set", i)],
        ]
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        if name == "first":
            written = entries(cache)
            assert any(n.startswith("jit_") for n in written), f"no compiled step in {cache}: {written}"
    assert entries(cache) == written  # the second run compiled nothing new: every step came from disk
