"""Data parallelism: 8 devices give the 1-device numbers; two processes give the 1-process numbers."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clipit.config import load_config
from clipit.data.shard_format import shard_name, write_shard
from tests.support.tiny_train import tiny_overrides
from tests.train.step_check import one_step_on_fixed_batch

WORKER = Path(__file__).with_name("distributed_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def one_device_step(tiny_shards, tmp_path_factory):
    from tests.support.tiny_train import run_overrides

    config = load_config(None, run_overrides(tiny_shards, tmp_path_factory.mktemp("unused")))
    return config, one_step_on_fixed_batch(config, jax.devices()[:1])


def _assert_same_step(a: dict, b: dict) -> None:
    assert a["eval_loss"] == pytest.approx(b["eval_loss"], rel=1e-5)
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)
    assert a["checksums"].keys() == b["checksums"].keys()
    for key in a["checksums"]:
        if key.endswith("key/bias"):
            # softmax is invariant to the key bias, so its true gradient is 0: what reaches it is
            # summation-order noise, which Adam scales up to a full step. Nothing to compare.
            continue
        assert a["checksums"][key] == pytest.approx(b["checksums"][key], rel=1e-5, abs=1e-6), key


def test_eight_devices_match_one(one_device_step):
    assert jax.device_count() == 8, "run with XLA_FLAGS=--xla_force_host_platform_device_count=8"
    config, single = one_device_step
    _assert_same_step(one_step_on_fixed_batch(config, jax.devices()), single)


def _with_corrupt_val_image(shards: Path, folder: Path) -> Path:
    """A copy of `shards` whose first val image (in process 0's share of two) is not a JPEG."""
    shutil.copytree(shards, folder)
    path = folder / shard_name("val", 0)
    table = pq.read_table(path)
    images = table.column("image").to_pylist()
    images[0] = b"not a jpeg"
    table = table.set_column(table.schema.get_field_index("image"), "image", pa.array(images, pa.binary()))
    path.unlink()
    write_shard(table, path, row_group_size=64)
    return folder


@pytest.mark.slow
def test_two_processes_match_one(one_device_step, tiny_shards, tmp_path):
    """...and validation stays in step when only one process's share holds a corrupt image."""
    _, single = one_device_step
    shards = _with_corrupt_val_image(tiny_shards, tmp_path / "shards")
    port = _free_port()
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1", "CLIPIT_DEBUG": "1"}
    outputs = [tmp_path / f"process{i}.json" for i in range(2)]
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                str(i),
                str(port),
                str(shards),
                str(tmp_path / "run"),
                str(outputs[i]),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    errors = [w.communicate(timeout=400)[1] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], errors[0][-2000:] + errors[1][-2000:]
    results = [json.loads(p.read_text()) for p in outputs]
    for result in results:
        assert result["process_count"] == 2 and result["steps"] == 4
        _assert_same_step(result, single)
    # 64 val rows, 32 per process, 8 per local batch: the batch holding the corrupt image is skipped
    # on both processes, and both report the same metrics of the same 3 global batches
    assert results[0]["val"] == results[1]["val"] and results[0]["val"]["loss"] > 0
    assert (tmp_path / "run" / "export" / "model.safetensors").is_file()


def test_batch_not_divisible_by_devices_fails_before_compute(tiny_shards, tmp_path):
    from clipit.errors import ConfigError
    from clipit.train.loop import train_and_evaluate

    config = load_config(None, tiny_overrides(tiny_shards, tmp_path / "run", "train.batch_size=12"))
    with pytest.raises(ConfigError, match="not divisible by the 8 devices"):
        train_and_evaluate(config)
    assert not (tmp_path / "run").exists()
    np.testing.assert_equal(jax.device_count(), 8)
