"""build-shards on a real 2-CPU Ray cluster: one Ray task per output shard, the same bytes as the
single-machine run, and a rerun after an interrupted run redoes only the missing shards."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clipit.config.data import ShardSettings
from clipit.data import shards
from tests.support.ray_cluster import ray_cluster  # noqa: F401  (fixture)
from tests.support.without_package import clipit_without


def result_bytes(folder: Path) -> dict[str, bytes]:
    names = [p for p in folder.iterdir() if p.suffix == ".parquet" or p.name == "summary.json"]
    return {p.name: p.read_bytes() for p in sorted(names)}


@pytest.mark.slow
def test_ray_build_equals_local_build_and_resumes(synthetic_source, tmp_path, ray_cluster):  # noqa: F811
    settings = {"image_side": 32, "rows_per_shard": 20, "val_fraction": 0.2, "sources": [synthetic_source]}
    local = shards.run(ShardSettings(**settings, workers=0), tmp_path / "local")
    on_ray = ShardSettings(**settings, distributor="ray")
    summary = shards.run(on_ray, tmp_path / "ray")
    expected = result_bytes(tmp_path / "local")
    assert len([n for n in expected if n.startswith(("train-", "val-"))]) >= 4  # several tasks ran
    assert result_bytes(tmp_path / "ray") == expected
    assert summary["ok"] == local["ok"] and summary["shards_reused"] == 0

    # An interrupted run: two shards and their records never written, the manifest not yet either.
    for name in ("train-00000.parquet", "val-00000.parquet"):
        (tmp_path / "ray" / name).unlink()
        (tmp_path / "ray" / ".build" / f"{name}.json").unlink()
    (tmp_path / "ray" / "manifest.parquet").unlink()
    again = shards.run(on_ray, tmp_path / "ray")
    built = [n for n in expected if n.startswith(("train-", "val-"))]
    assert again["shards_reused"] == len(built) - 2  # every shard but the two
    assert result_bytes(tmp_path / "ray") == expected


@pytest.mark.slow
def test_cli_joins_the_cluster_at_the_configured_address(synthetic_source, tmp_path, ray_cluster):  # noqa: F811
    """`clipit build-shards --distributor ray` in its own process, reaching the cluster by its address."""
    settings = ["--set", "data.shards.image_side=32", "--set", "data.shards.rows_per_shard=20"]
    shards.run(
        ShardSettings(image_side=32, rows_per_shard=20, workers=0), tmp_path / "local", [synthetic_source]
    )
    command = [sys.executable, "-c", "from clipit.cli.main import main; main()", "build-shards"]
    address = ["--set", f"data.shards.ray_address={ray_cluster}"]
    result = subprocess.run(
        [
            *command,
            str(synthetic_source),
            "--out",
            str(tmp_path / "cli"),
            "--distributor",
            "ray",
            *address,
            *settings,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "RAY_ADDRESS": ""},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result_bytes(tmp_path / "cli") == result_bytes(tmp_path / "local")
    assert 'distributor = "ray"' in (tmp_path / "cli" / "config.resolved.toml").read_text()


def test_ray_not_installed_is_refused_before_any_work(synthetic_source, tmp_path):
    args = ["build-shards", str(synthetic_source), "--out", str(tmp_path / "out"), "--distributor", "ray"]
    result = clipit_without("ray", args, tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "data.shards.distributor = 'ray' but ray is not installed" in result.stderr
    assert not (tmp_path / "out").exists()


def test_unreachable_cluster_is_refused_in_seconds_before_any_work(synthetic_source, tmp_path):
    """A Ray address where nothing listens fails fast with a one-line error (Ray itself waits minutes)."""
    with socket.socket() as probe:  # a loopback port that was free a moment ago: nothing accepts there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = ["build-shards", str(synthetic_source), "--out", str(tmp_path / "out"), "--distributor", "ray"]
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", "from clipit.cli.main import main; main()", *args]
        + ["--set", f"data.shards.ray_address=127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert f"data.shards.distributor: cannot reach the Ray cluster at 127.0.0.1:{port}" in result.stderr
    assert time.monotonic() - started < 60
    assert not (tmp_path / "out").exists()
    bad = subprocess.run(
        [sys.executable, "-c", "from clipit.cli.main import main; main()", *args]
        + ["--set", "data.shards.ray_address=headnode"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "is not host:port" in bad.stderr, bad.stderr
