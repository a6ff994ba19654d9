"""`clipit build-shards` through CliRunner: flags, config-driven paths, one-line errors with exit 2."""

from __future__ import annotations

import tomllib

import pyarrow.parquet as pq
from typer.testing import CliRunner

from clipit.cli.main import app
from clipit.data import manifest, shard_format

runner = CliRunner()


def error_lines(result):
    return [line for line in result.stderr.splitlines() if line.strip()]


def test_flags_build_shards_and_print_a_summary_table(synthetic_source, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(
        app,
        [
            "build-shards",
            "--out",
            "shards",
            str(synthetic_source),
            "--val-fraction",
            "0.25",
            "--set",
            "data.shards.workers=0",
            "--set",
            "data.shards.image_side=32",
        ],
    )
    assert result.exit_code == 0, result.output
    n = manifest.read(synthetic_source).num_rows
    assert "total" in result.stdout and "synthetic" in result.stdout and f"{n} rows in" in result.stdout
    resolved = tomllib.loads((tmp_path / "shards" / "config.resolved.toml").read_text())
    assert resolved["data"]["shards"]["val_fraction"] == 0.25
    assert resolved["data"]["shards"]["sources"] == [str(synthetic_source)]
    table = manifest.read(tmp_path / "shards")
    assert table.column("split").to_pylist() == [  # by image: a hash of the image's bytes
        manifest.split_for_image(0.25, sha, None, "") for sha in table.column("image_sha256").to_pylist()
    ]
    rows = table.to_pylist()
    train, val = ([r["image_sha256"] for r in rows if r["split"] == s] for s in ("train", "val"))
    assert f"train: {len(set(train))} images, {len(train)} caption rows" in result.stdout
    assert f"val: {len(set(val))} images, {len(val)} caption rows" in result.stdout
    image_widths = {
        w
        for p in shard_format.list_shards("shards", "train")
        for w in pq.read_table(p).column("width").to_pylist()
    }
    assert image_widths == {32}


def test_paths_come_from_the_config_file(synthetic_source, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clipit.toml").write_text(
        f'[data.shards]\nsources = ["{synthetic_source}"]\nout = "from-config"\nworkers = 0\n'
    )
    result = runner.invoke(app, ["build-shards"])  # ./clipit.toml is read by default
    assert result.exit_code == 0, result.output
    assert (
        shard_format.count_rows(tmp_path / "from-config", "train")
        + shard_format.count_rows(tmp_path / "from-config", "val")
        == manifest.read(synthetic_source).num_rows
    )


def test_missing_source_folder_is_one_line_exit_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["build-shards", "--out", "shards", "no-such-folder"])
    assert result.exit_code == 2
    lines = error_lines(result)
    assert len(lines) == 1 and "no-such-folder" in lines[0] and "Traceback" not in result.output
    assert not (tmp_path / "shards").exists()


def test_wrong_manifest_is_one_line_exit_2(tmp_path, monkeypatch, synthetic_source):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src").mkdir()
    pq.write_table(
        pq.read_table(synthetic_source / "manifest.parquet").drop_columns(["status"]),
        tmp_path / "src" / "manifest.parquet",
    )
    result = runner.invoke(app, ["build-shards", "--out", "shards", "src"])
    assert result.exit_code == 2
    lines = error_lines(result)
    assert len(lines) == 1 and "src/manifest.parquet" in lines[0] and "status" in lines[0]


def test_no_sources_and_bad_val_fraction_exit_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["build-shards", "--out", "shards"])
    assert result.exit_code == 2 and "no source folders" in result.stderr
    result = runner.invoke(app, ["build-shards", "--out", "shards", "x", "--val-fraction", "1.5"])
    assert result.exit_code == 2
