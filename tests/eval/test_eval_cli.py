"""`clipit eval zero-shot | retrieval` through the CLI on a tiny synthetic dataset."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from clipit.cli.main import app
from clipit.config.data import SyntheticSource
from clipit.data import synthetic

runner = CliRunner()


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval_synthetic") / "syn"
    synthetic.generate(
        SyntheticSource(n=16, seed=0, samples_per_shard=16, zeroshot_per_class=2, retrieval_images=6), out
    )
    return out


def test_zero_shot_synthetic_two_models_side_by_side(tiny_model, synthetic_dir, tmp_path):
    output = tmp_path / "zs.json"
    result = runner.invoke(
        app,
        [
            "eval",
            "zero-shot",
            "--dataset",
            "synthetic",
            "--model",
            str(tiny_model),
            "--model",
            str(tiny_model),
            "--data",
            str(synthetic_dir),
            "--output",
            str(output),
            "--batch-size",
            "4",
        ],
    )
    assert result.exit_code == 0, result.output
    header = result.stdout.splitlines()[1].split()
    assert header == ["metric", str(tiny_model), str(tiny_model)]
    # one clip_benchmark object per model, beside --output (clip_benchmark build reads one per file)
    written = sorted(tmp_path.glob("zs-*.json"))  # zs-<model>.json and zs-<model>-2.json
    assert len(written) == 2 and not output.exists()
    records = [json.loads(p.read_text()) for p in written]
    assert [r["dataset"] for r in records] == ["synthetic", "synthetic"]
    assert all(r["pretrained"] == str(tiny_model.resolve()) for r in records)
    metrics = records[0]["metrics"]
    for attribute, classes in (
        ("colour", 8),
        ("shape", 6),
        ("count", 4),
        ("composition", None),
        ("relation", 4),
    ):
        assert 0.0 <= metrics[f"{attribute}/acc1"] <= 1.0
        if classes:
            assert metrics[f"{attribute}/chance"] == pytest.approx(1 / classes)
    assert records[0]["metrics"] == records[1]["metrics"]  # same model, same numbers
    assert output.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_retrieval_synthetic(tiny_model, synthetic_dir, tmp_path):
    output = tmp_path / "r.json"
    result = runner.invoke(
        app,
        [
            "eval",
            "retrieval",
            "--dataset",
            "synthetic",
            "--model",
            str(tiny_model),
            "--images",
            str(synthetic_dir / "retrieval" / "images"),
            "--annotations",
            str(synthetic_dir / "retrieval" / "captions.json"),
            "--output",
            str(output),
            "--batch-size",
            "4",
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads(output.read_text())
    assert record["task"] == "zeroshot_retrieval" and record["counts"]["images"] == 6
    assert set(record["metrics"]) >= {
        "image_retrieval_recall@1",
        "text_retrieval_recall@10",
        "image_retrieval_mrr@5",
    }
    assert not output.with_suffix(".png").exists()  # one model: no chart unless --plot


def test_config_supplies_model_and_paths(tiny_model, synthetic_dir, tmp_path):
    cfg = tmp_path / "clipit.toml"
    cfg.write_text(
        f'[eval]\nmodel = ["{tiny_model}"]\nbatch_size = 4\n'
        f'[eval.retrieval]\ndataset = "synthetic"\nimages = "{synthetic_dir / "retrieval" / "images"}"\n'
        f'annotations = "{synthetic_dir / "retrieval" / "captions.json"}"\n'
    )
    result = runner.invoke(
        app, ["--config", str(cfg), "eval", "retrieval", "--plot", str(tmp_path / "p.png")]
    )
    assert result.exit_code == 0, result.output
    assert "image_retrieval_recall@1" in result.stdout and (tmp_path / "p.png").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval", "zero-shot", "--dataset", "synthetic", "--data", "."], "no model to evaluate"),
        (["eval", "zero-shot", "--dataset", "imagenet-it", "--model", "x"], "no data folder given"),
        (
            ["eval", "zero-shot", "--dataset", "cifar", "--model", "x", "--data", "."],
            "--dataset: key 'eval.zero_shot.dataset': Input should be",
        ),
        (["eval", "retrieval", "--model", "x", "--images", "."], "needs an images folder and a caption file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_missing_model_folder_exit_2(synthetic_dir, tmp_path):
    result = runner.invoke(
        app,
        [
            "eval",
            "zero-shot",
            "--dataset",
            "synthetic",
            "--data",
            str(synthetic_dir),
            "--model",
            str(tmp_path / "nope"),
        ],
    )
    assert result.exit_code == 2 and "nope" in result.stderr


@pytest.mark.parametrize("flag", ["--output", "--plot"])
def test_output_that_is_a_folder_is_refused_before_any_model_loads(synthetic_dir, tmp_path, flag):
    # The model path does not exist: had the model been opened first, the error would name it instead.
    folder = tmp_path / "taken"
    folder.mkdir()
    result = runner.invoke(
        app,
        [
            "eval",
            "zero-shot",
            "--dataset",
            "synthetic",
            "--data",
            str(synthetic_dir),
            "--model",
            str(tmp_path / "nope"),
            flag,
            str(folder),
        ],
    )
    assert result.exit_code == 2, result.output
    assert f"{flag} {folder} is a folder" in result.stderr and "nope" not in result.stderr


@pytest.mark.parametrize("flags", [(), ("--set", "eval.compilation_cache=false")], ids=["on", "off"])
def test_eval_keeps_compiled_code_in_the_user_cache_unless_turned_off(
    tiny_model, synthetic_dir, tmp_path, flags
):
    """A whole `clipit eval` process, as a user runs it: the cache folder is written only when enabled."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env |= {"XDG_CACHE_HOME": str(tmp_path / "cache"), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    images, annotations = (
        synthetic_dir / "retrieval" / "images",
        synthetic_dir / "retrieval" / "captions.json",
    )
    command = [sys.executable, "-m", "clipit.cli.main", "eval", "retrieval", "--dataset", "synthetic"]
    command += ["--model", str(tiny_model), "--images", str(images), "--annotations", str(annotations)]
    command += ["--output", str(tmp_path / "r.json"), *flags]
    process = subprocess.run(command, capture_output=True, env=env, timeout=300)
    assert process.returncode == 0, process.stderr.decode()[-2000:]
    cache = tmp_path / "cache" / "clipit" / "jax"
    if flags:
        assert not cache.exists()
    else:
        assert cache.is_dir() and any(cache.iterdir()), "nothing was written to the compilation cache"
