"""`clipit download cc3m` through img2dataset's cluster distributors, for real: Ray (a local instance that
img2dataset starts) and PySpark in local mode (Java from Debian's default-jre-headless), against the
loopback image server. Each must give the manifest the single-machine download gives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.support.image_server import fast_download_args

CLIPIT = [sys.executable, "-c", "from clipit.cli.main import main; main()"]
COLUMNS = ["key", "status", "error", "shard", "index", "width", "height", "image_sha256"]


def download(tmp_path: Path, tsv: Path, name: str, *settings: str) -> dict:
    out = tmp_path / name
    result = subprocess.run(
        [
            *CLIPIT,
            "download",
            "cc3m",
            "--tsv",
            str(tsv),
            "--out",
            str(out),
            *fast_download_args(4),
            *settings,
        ],
        cwd=tmp_path,
        env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "RAY_ADDRESS": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == f"{out / 'manifest.parquet'}\n"  # the cluster's logs stay off stdout
    return pq.read_table(out / "manifest.parquet", columns=COLUMNS).to_pydict()


@pytest.mark.slow
@pytest.mark.parametrize(
    "settings",
    [
        ["--distributor", "ray"],
        ["--distributor", "pyspark"],  # img2dataset's own local[processes] session
        ["--distributor", "pyspark", "--set", "data.download.spark_master=local[2]"],  # clipit's session
    ],
    ids=["ray", "pyspark", "pyspark-master"],
)
def test_cluster_distributor_equals_single_machine(tmp_path, image_server, settings):
    lines = [f"photo {i}\t{image_server.url(f'ok/{60 + i}x48/r{i}')}\n" for i in range(9)]
    lines.append(f"missing\t{image_server.url('missing/r9')}\n")
    tsv = tmp_path / "gcc.tsv"
    tsv.write_text("".join(lines), encoding="utf-8")
    single = download(tmp_path, tsv, "single")
    cluster = download(tmp_path, tsv, "cluster", *settings)
    assert cluster == single
    assert cluster["status"] == ["ok"] * 9 + ["failed"]
    assert len(set(cluster["shard"]) - {None}) == 3  # 3 img2dataset shards of 4 URLs: 3 tasks
