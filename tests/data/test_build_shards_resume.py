"""Real `clipit` subprocesses: download synthetic, then build-shards killed with SIGKILL mid-run and rerun.

The rerun must keep the shards finished before the kill (not rewrite them) and end with exactly the
bytes of one clean, uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clipit.config import load_config
from clipit.data import manifest, shards

CLIPIT = [sys.executable, "-c", "from clipit.cli.main import main; main()"]
CONFIG = """
[data.synthetic]
image_size = 160
samples_per_shard = 100
zeroshot_per_class = 1
retrieval_images = 2

[data.shards]
image_side = 64
rows_per_shard = 6
val_fraction = 0.1
workers = 0
"""


def clipit(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    return subprocess.Popen(
        [*CLIPIT, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def result_bytes(folder: Path) -> dict[str, bytes]:
    names = [p for p in folder.iterdir() if p.suffix == ".parquet" or p.name == "summary.json"]
    return {p.name: p.read_bytes() for p in sorted(names)}


@pytest.mark.slow
def test_kill_9_then_rerun_equals_one_clean_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the clean run names its source as the CLI runs do: "src"
    (tmp_path / "clipit.toml").write_text(CONFIG)
    download = clipit("download", "synthetic", "--out", "src", "--n", "300", "--seed", "4", cwd=tmp_path)
    out, err = download.communicate(timeout=120)
    assert download.returncode == 0, err.decode()
    assert out.decode().strip() == "src/manifest.parquet"

    settings = load_config(tmp_path / "clipit.toml").data.shards
    shards.run(settings, Path("clean"), [Path("src")])
    clean = result_bytes(tmp_path / "clean")

    records = tmp_path / "killed" / ".build"
    run = clipit("build-shards", "--out", "killed", "src", cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not (records.is_dir() and len(list(records.glob("*.json"))) >= 3):
        assert run.poll() is None, run.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    assert run.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "manifest.parquet").exists(), "the run ended before the kill"
    finished = {p.stem: (tmp_path / "killed" / p.stem).stat().st_mtime_ns for p in records.glob("*.json")}
    assert 3 <= len(finished) < len(clean) - 2

    rerun = clipit("build-shards", "--out", "killed", "src", cwd=tmp_path)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err.decode()
    rows = manifest.read(tmp_path / "src").num_rows  # 300 images, several captions each
    assert f"{rows} rows in" in out.decode()
    assert result_bytes(tmp_path / "killed") == clean
    for name, mtime in finished.items():  # kept, not redone
        assert (tmp_path / "killed" / name).stat().st_mtime_ns == mtime
    assert not list((tmp_path / "killed").glob(".*.tmp")) and not list(records.glob(".*.tmp"))
