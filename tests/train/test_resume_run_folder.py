"""`clipit train --out RUN --resume` needs only the run folder; a resume may not change the run's maths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.support.tiny_train import tiny_overrides, tiny_phases

CLIPIT = [sys.executable, "-m", "clipit.cli.main"]
ENV = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}


def clipit(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLIPIT, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)


def elsewhere(tmp_path: Path) -> Path:
    """A working directory whose clipit.toml names folders that do not exist: a resume must not read it."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "clipit.toml").write_text('[train]\ndata = "no-such-shards"\nbatch_size = 4\n')
    return folder


def test_resume_from_the_run_folder_alone_and_maths_flags_refused(tiny_shards, tmp_path):
    run_dir = tmp_path / "runs" / "tiny"
    items = [
        i
        for i in tiny_overrides(tiny_shards, run_dir, tiny_phases(heads=1, full=1), "train.eval_every=1")
        if not i.startswith(("train.data=", "train.out="))
    ]
    start = tmp_path / "start"
    start.mkdir()
    first = clipit(
        start,
        "train",
        "--data",
        str(tiny_shards),
        "--out",
        str(run_dir),
        *[a for i in items for a in ("--set", i)],
    )
    assert first.returncode == 0, first.stderr[-3000:]
    resolved = run_dir / "config.resolved.toml"
    saved = tomllib.loads(resolved.read_text())
    # --data/--out are part of the run's record, as absolute paths
    assert saved["train"]["data"] == str(tiny_shards.absolute()) and saved["train"]["out"] == str(
        run_dir.absolute()
    )

    before = {
        p: p.read_bytes() for p in (resolved, run_dir / "export" / "config.json", run_dir / "metrics.jsonl")
    }
    cwd = elsewhere(tmp_path)
    refused = clipit(cwd, "train", "--out", str(run_dir), "--resume", "--set", "model.projection_dim=32")
    assert refused.returncode == 2, refused.stderr[-3000:]
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "model.projection_dim" in lines[0] and "16" in lines[0] and "32" in lines[0], (
        lines
    )
    assert {p: p.read_bytes() for p in before} == before  # nothing rewritten: the run still loads

    moved = clipit(cwd, "train", "--out", str(run_dir), "--resume", "--data", str(tmp_path / "other"))
    assert moved.returncode == 2 and "train.data" in moved.stderr, moved.stderr[-3000:]

    resumed = clipit(cwd, "train", "--out", str(run_dir), "--resume", "--set", "train.log_every=7")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming" in resumed.stderr and "no-such-shards" not in resumed.stderr
    assert json.loads(resumed.stdout)["steps"] == 2
    after = tomllib.loads(resolved.read_text())
    assert after["train"]["log_every"] == 7  # a harmless change is applied and recorded
    assert after["model"] == saved["model"] and after["train"]["phases"] == saved["train"]["phases"]
    assert json.loads((run_dir / "export" / "config.json").read_text())["projection_dim"] == 16
