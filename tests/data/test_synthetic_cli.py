"""`clipit download synthetic` through CliRunner: flags over config, output layout, errors."""

from __future__ import annotations

import tomllib

from typer.testing import CliRunner

from clipit.cli.main import app
from clipit.data import manifest

runner = CliRunner()
SMALL = ["--set", "data.synthetic.zeroshot_per_class=1", "--set", "data.synthetic.retrieval_images=2"]


def test_download_synthetic_flags_override_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clipit.toml").write_text('[data.synthetic]\nn = 5\nseed = 9\nout = "from-config"\n')
    result = runner.invoke(app, ["download", "synthetic", "--out", "syn", "--n", "7", *SMALL])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "syn/manifest.parquet"
    table = manifest.read(tmp_path / "syn")
    assert table.num_rows == 7 * 3  # --n counts images; three captions each by default
    assert sorted(set(table.column("index").to_pylist())) == list(range(7))
    assert table.column("url").to_pylist()[0] == "synthetic://seed-9/000000000"  # seed from the config
    resolved = tomllib.loads((tmp_path / "syn" / "config.resolved.toml").read_text())
    assert resolved["data"]["synthetic"]["n"] == 7 and resolved["data"]["synthetic"]["seed"] == 9
    for name in ("tokenizer/vocab.txt", "zeroshot/index.json", "retrieval/captions.json", "00000.tar"):
        assert (tmp_path / "syn" / name).is_file()
    assert not (tmp_path / "from-config").exists()


def test_download_synthetic_bad_values_exit_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["download", "synthetic", "--out", "syn", "--n", "0"])
    assert result.exit_code == 2
    result = runner.invoke(
        app, ["download", "synthetic", "--out", "syn", "--set", "data.synthetic.image_size=4"]
    )
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "data.synthetic.image_size" in lines[0]
    assert not (tmp_path / "syn").exists()
