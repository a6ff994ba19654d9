"""Strict values: no coercion of wrong types, finite floats, and consistent sizes, checked at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from clipit.config import load_config
from clipit.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[train]\nbatch_size = "64"\n', "train.batch_size"),  # lax pydantic would take 64
        ("[train]\nbatch_size = 64.0\n", "train.batch_size"),
        ("[train]\nexport = 1\n", "train.export"),
        ("[translate]\nto = 5\n", "translate.to"),
        ("[train]\nout = 5\n", "train.out"),
        ("[data.wit]\ntsv = [1]\n", "data.wit.tsv"),
        ("[train]\nmax_logit_scale = inf\n", "train.max_logit_scale"),
        ("[train]\nmax_logit_scale = nan\n", "train.max_logit_scale"),
        ("[model]\nlogit_scale_init = -inf\n", "model.logit_scale_init"),
        ("[train]\nseed = -1\n", "train.seed"),
    ],
)
def test_wrong_types_and_absurd_values_name_the_key(tmp_path, toml, key):
    path = write(tmp_path / "bad.toml", toml)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"bad.toml: key '{key}'" in info.value.one_line()


def test_toml_integers_are_floats_and_strings_are_paths(tmp_path):
    path = write(
        tmp_path / "c.toml",
        '[train]\nmax_logit_scale = 50\nout = "runs/x"\n[data.shards]\nsources = ["a", "b"]\n',
    )
    cfg = load_config(path, ["train.phases.0.lr=1"])
    assert cfg.train.max_logit_scale == 50.0 and isinstance(cfg.train.max_logit_scale, float)
    assert cfg.train.phases[0].lr == 1.0
    assert cfg.train.out == Path("runs/x") and cfg.data.shards.sources == [Path("a"), Path("b")]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["model.vision.image_size=100"],
            "key 'model': vision.image_size 100 is not a multiple of vision.patch_size 32",
        ),
        (
            ["model.vision.hidden_size=100"],
            "vision.hidden_size 100 is not divisible by vision.num_attention_heads 12",
        ),
        (
            ["model.text.num_attention_heads=7"],
            "text.hidden_size 768 is not divisible by text.num_attention_heads 7",
        ),
        (["model.max_text_length=600"], "max_text_length 600 exceeds the 512 positions"),
        (["model.text.max_position_embeddings=64"], "max_text_length 96 exceeds the 64 positions"),
        (
            ['train.phases=[{name="a", steps=1, trainable=["vision("]}]'],
            "key 'train.phases.0.trainable': 'vision(' is not a valid regex",
        ),
    ],
)
def test_inconsistent_sizes_are_config_errors(overrides, message):
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    line = info.value.one_line()
    assert line.startswith(f"--set {overrides[0].split('=')[0]}") and message in line, line


@pytest.mark.parametrize(
    "overrides",
    [
        # a checkpoint's own sizes replace these: they are checked when it is read
        [
            "model.vision.pretrained=some/clip",
            "model.vision.image_size=100",
            "model.vision.num_attention_heads=7",
        ],
        ["model.text.pretrained=some/bert", "model.max_text_length=600"],
        ["model.init_from=some/dual", "model.max_text_length=600", "model.vision.image_size=100"],
    ],
)
def test_sizes_a_checkpoint_replaces_are_not_checked_at_load(overrides):
    load_config(None, overrides)
