"""`clipit train` keeps its compiled steps in the user cache folder: a rerun of the same model and batch
(another seed, other data of the same shapes) reads them instead of compiling again, and so does a run
resumed from a checkpoint. `train.compilation_cache=false` writing nothing is checked by
tests/train/test_train_lock.py's runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from clipit.train.mesh import DATA_AXIS, FSDP_AXIS
from clipit.train.sharding import place
from tests.support.tiny_train import tiny_overrides

# two steps with a checkpoint after each: the train step runs both before and after a resume point
SHORT_RUN = ('train.phases=[{name="all", steps=2}]', "train.checkpoint_every=1", "train.export=false")


def entries(cache: Path) -> set[str]:
    return {p.name for p in cache.rglob("*") if p.is_file()}


def clipit_train(root: Path, *args: str) -> None:
    """`clipit train` in a subprocess whose user cache folder is root/cache (one device, as a laptop)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env |= {"XDG_CACHE_HOME": str(root / "cache"), "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    # every compilation gets an entry: small helpers (jit__threefry_split) compile in about the 0.2 s
    # a real run's threshold asks for, so with it, what a run writes would depend on the machine's load
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    command = [sys.executable, "-m", "clipit.cli.main", "train", *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def sets(items: list[str]) -> list[str]:
    return [a for item in items for a in ("--set", item)]


@pytest.fixture(scope="module")
def first_run(tiny_shards, tmp_path_factory) -> Path:
    """A fresh run in root/first, which filled the empty cache root/cache/clipit/jax."""
    root = tmp_path_factory.mktemp("compile-cache")
    clipit_train(root, *sets(tiny_overrides(tiny_shards, root / "first", *SHORT_RUN)))
    written = entries(root / "cache" / "clipit" / "jax")
    assert any(n.startswith("jit_step-") for n in written), f"no compiled step in the cache: {written}"
    return root


@pytest.mark.slow
def test_a_second_run_reads_every_step_from_the_cache(first_run, tiny_shards):
    cache = first_run / "cache" / "clipit" / "jax"
    before = entries(cache)
    clipit_train(first_run, *sets(tiny_overrides(tiny_shards, first_run / "second", *SHORT_RUN)))
    assert entries(cache) == before  # the second run compiled nothing new: every step came from disk


@pytest.mark.slow
def test_a_resumed_run_reads_every_step_from_the_cache(first_run):
    cache = first_run / "cache" / "clipit" / "jax"
    before = entries(cache)
    # the first run as if killed after its step-1 checkpoint (a copy: the other test's run stays whole)
    run = first_run / "resumed"
    shutil.copytree(first_run / "first", run)
    shutil.rmtree(run / "checkpoints" / "2")
    clipit_train(first_run, "--out", str(run), "--resume")
    assert (run / "checkpoints" / "2").is_dir()  # the resume ran step 2, from restored state
    # it compiled nothing new, its train and validation steps included: the restored state is laid
    # out as a fresh run's (clipit.train.sharding.place)
    assert entries(cache) == before


def test_place_commits_arrays_of_an_equivalent_sharding_to_the_rules():
    # on one device a fresh array's SingleDeviceSharding lays it out as the rule does, yet jit keys
    # its program on the sharding itself: the step's inputs must carry the rule's NamedSharding
    mesh = Mesh(np.array(jax.devices()[:1]).reshape(1, 1), (DATA_AXIS, FSDP_AXIS))
    fresh = {"kernel": jnp.ones((4, 4)), "step": np.zeros((), np.int32)}
    placed = place(mesh, fresh)
    for leaf in placed.values():
        assert leaf.committed and leaf.sharding == NamedSharding(mesh, PartitionSpec())
    assert place(mesh, placed)["kernel"] is placed["kernel"]  # in place: kept as it is
