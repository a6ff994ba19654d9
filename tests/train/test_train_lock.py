"""One writer per run folder: a second `clipit train` on a run being written is refused with exit 2."""

from __future__ import annotations

import json

import pytest

from tests.support.folder_race import frozen_while_holding, run, start
from tests.support.tiny_train import tiny_overrides, tiny_phases

ENV = {"XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
NO_CACHE = "train.compilation_cache=false"  # the test checks nothing is written to the cache folder


def train_args(shards, out, *extra: str) -> list[str]:
    items = tiny_overrides(
        shards, out, tiny_phases(heads=1, full=1), "train.export=false", "train.eval_every=100", NO_CACHE
    )
    return ["train", *[arg for item in items for arg in ("--set", item)], *extra]


@pytest.mark.slow
def test_a_second_train_on_the_same_run_folder_is_refused(tiny_shards, tmp_path):
    out = tmp_path / "run"
    cache = {"JAX_COMPILATION_CACHE_DIR": "", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    env = ENV | cache | {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    first = start(*train_args(tiny_shards, out), env=env)
    with frozen_while_holding(first, out):
        second = run(*train_args(tiny_shards, out, "--resume"), env=env)
    assert second.returncode == 2, second.stderr
    lines = [line for line in second.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: clipit train (pid {first.pid} on "), second.stderr
    assert f"is already writing to {out}" in lines[0]
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert sorted(set(steps)) == [1, 2] and steps.count(1) == steps.count(2)  # one run's lines only
    assert not (tmp_path / "cache" / "clipit" / "jax").exists()  # train.compilation_cache=false
