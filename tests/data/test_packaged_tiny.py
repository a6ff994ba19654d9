"""`--config tiny` outside a checkout: the packaged config by name, and its tokenizer travelling with the
data (build-shards copies the source's tokenizer beside the shards; train finds it there)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from clipit.config.load import packaged_config
from clipit.data.shards.tokenizer import copy_source_tokenizer

CLIPIT = [sys.executable, "-m", "clipit.cli.main"]
ENV = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
# the tiny config's towers, narrowed: the test is about where things are found, not about learning
SMALL = [
    "model.vision.hidden_size=32",
    "model.vision.num_hidden_layers=1",
    "model.vision.num_attention_heads=2",
    "model.vision.intermediate_size=64",
    "model.text.hidden_size=32",
    "model.text.num_hidden_layers=1",
    "model.text.num_attention_heads=2",
    "model.text.intermediate_size=64",
    "train.batch_size=8",
    'train.phases=[{name="all", steps=2, lr=1e-3}]',
]


def clipit(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLIPIT, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)


def test_packaged_configs_by_name_from_any_folder(tmp_path):
    shown = clipit(tmp_path, "--config", "tiny", "config", "show")
    assert shown.returncode == 0, shown.stderr
    config = tomllib.loads(shown.stdout)
    assert config["train"]["batch_size"] == 192 and "tokenizer" not in config["model"]
    shown = clipit(tmp_path, "config", "show", "--config", "clip-italian")
    assert shown.returncode == 0 and tomllib.loads(shown.stdout)["model"]["max_text_length"] == 96, (
        shown.stderr
    )

    made = clipit(tmp_path, "init", "proj", "--preset", "tiny")
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "proj" / "clipit.toml").read_text() == packaged_config("tiny").read_text()

    unknown = clipit(tmp_path, "init", "other", "--preset", "tinyy")
    assert unknown.returncode == 2 and "choose one of clip-italian, tiny" in unknown.stderr, unknown.stderr
    assert not (tmp_path / "other" / "clipit.toml").exists()
    missing = clipit(tmp_path, "--config", "nope", "config", "show")
    assert missing.returncode == 2 and "config file nope does not exist" in missing.stderr


@pytest.mark.model  # trains a model
def test_tiny_trains_with_the_tokenizer_the_shards_carry(synthetic_source, tmp_path):
    project = tmp_path / "project"  # no sources/synthetic/tokenizer here: only the shards carry it
    project.mkdir()
    shards, run_dir = tmp_path / "shards", tmp_path / "run"
    built = clipit(project, "--config", "tiny", "build-shards", "--out", str(shards), str(synthetic_source))
    assert built.returncode == 0, built.stderr[-3000:]
    copied = sorted(p.name for p in (shards / "tokenizer").iterdir())
    assert copied == sorted(p.name for p in (synthetic_source / "tokenizer").iterdir())

    args = ["--config", "tiny", "train", "--data", str(shards), "--out", str(run_dir)]
    trained = clipit(project, *args, *[a for item in SMALL for a in ("--set", item)])
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert json.loads(trained.stdout)["steps"] == 2
    saved = tomllib.loads((run_dir / "config.resolved.toml").read_text())
    assert saved["model"]["tokenizer"] == str(shards.absolute() / "tokenizer")  # the run names what it used

    from transformers import AutoTokenizer

    exported = AutoTokenizer.from_pretrained(run_dir / "export")
    ids = exported("un cerchio rosso")["input_ids"]
    assert exported.unk_token_id not in ids and exported.model_max_length == 16


def test_sources_with_different_tokenizers_get_none_copied(tmp_path):
    a, b, out = tmp_path / "a", tmp_path / "b", tmp_path / "out"
    for folder, vocab in ((a, "[PAD]\nciao\n"), (b, "[PAD]\nmondo\n")):
        (folder / "tokenizer").mkdir(parents=True)
        (folder / "tokenizer" / "vocab.txt").write_text(vocab)
    assert copy_source_tokenizer([a], out) == out / "tokenizer"
    assert (out / "tokenizer" / "vocab.txt").read_text() == "[PAD]\nciao\n"
    assert copy_source_tokenizer([a, b], out) is None
    assert not (out / "tokenizer").exists()  # the earlier copy no longer fits the sources
