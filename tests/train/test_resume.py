"""kill -9 in the middle of `clipit train`, then `--resume`: the same parameters as the uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.support.tiny_train import HEADS, run_overrides
from tests.support.tiny_train import params_at as _params_at

CLIPIT = [sys.executable, "-m", "clipit.cli.main"]
FULL, KILL_AT = 60, 40  # the kill comes after checkpoint 40, mid-way through phase 2
SHORTER = [  # the shared tiny run's settings, shorter
    f'train.phases=[{{name="heads", steps={HEADS}, trainable=["projection", "logit_scale"], lr=2e-3}},'
    f' {{name="all", steps={FULL}, lr=2e-3, warmup=0.1, reset_optimizer=false}}]',
    "train.checkpoint_every=20",
]


def _train(out, shards, *extra):
    args = [*CLIPIT, "train"]
    for item in [*run_overrides(shards, out), *SHORTER]:
        args += ["--set", item]
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    return subprocess.Popen(
        [*args, *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.slow
def test_kill_then_resume_reaches_the_uninterrupted_parameters(tiny_shards, tmp_path):
    # The reference runs in a subprocess of the same setup: XLA on 1 device vs 8 differs in the last bits.
    reference_run = _train(tmp_path / "reference", tiny_shards)
    out = tmp_path / "killed"
    first = _train(out, tiny_shards)
    target = out / "checkpoints" / str(KILL_AT)  # mid-way through phase 2 (its optimizer, data position)
    deadline = time.monotonic() + 400
    while not target.is_dir() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    assert first.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (out / "checkpoints" / str(HEADS + FULL)).exists()

    # the resume names only the run folder, from another working directory: its saved config is the run
    second = subprocess.Popen(
        [*CLIPIT, "train", "--out", str(out), "--resume"],
        cwd=tmp_path,
        env={**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, stderr = second.communicate(timeout=400)
    assert second.returncode == 0, stderr[-3000:]
    assert "resuming" in stderr
    _, reference_err = reference_run.communicate(timeout=400)
    assert reference_run.returncode == 0, reference_err[-3000:]
    resumed = _params_at(out, HEADS + FULL)
    reference = _params_at(tmp_path / "reference", HEADS + FULL)
    assert resumed.keys() == reference.keys()
    # Bit-identical: the loop continues from fresh copies of the state after every checkpoint, as the
    # resumed process does (XLA's CPU kernels may round differently on donated and fresh buffers).
    for key in reference:
        np.testing.assert_array_equal(resumed[key], reference[key], err_msg=key)
    killed_rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    reference_rows = [
        json.loads(line) for line in (tmp_path / "reference" / "metrics.jsonl").read_text().splitlines()
    ]
    killed_train = [r for r in killed_rows if r["split"] == "train"]
    reference_train = [r for r in reference_rows if r["split"] == "train"]
    assert [r["step"] for r in killed_train] == list(range(1, HEADS + FULL + 1))  # every step logged once
    assert [r["loss"] for r in killed_train[:KILL_AT]] == [r["loss"] for r in reference_train[:KILL_AT]]
    assert [r["loss"] for r in killed_train] == [r["loss"] for r in reference_train]


def test_a_run_folder_with_checkpoints_needs_resume(tiny_run):
    from clipit.config import load_config
    from clipit.errors import ConfigError
    from clipit.train.loop import train_and_evaluate

    run_dir, config, _ = tiny_run
    before = (run_dir / "metrics.jsonl").read_bytes()
    try:
        train_and_evaluate(load_config(run_dir / "config.resolved.toml"))
    except ConfigError as exc:
        assert "already holds checkpoints" in str(exc) and "--resume" in exc.one_line()
    else:
        raise AssertionError("expected a ConfigError")
    assert (run_dir / "metrics.jsonl").read_bytes() == before
