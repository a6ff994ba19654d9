"""Bad configs fail before any training compute, with one line on stderr and exit 2."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from clipit.cli.main import app
from tests.support import tiny_hf
from tests.support.tiny_train import SIDE, tiny_overrides


def _run(args):
    return CliRunner().invoke(app, args)


def _sets(items):
    return [arg for item in items for arg in ("--set", item)]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (['train.phases=[{name="heads", steps=2, trainable=["visual_projektion"]}]'], "matches no parameter"),
        (["train.batch_size=12"], "not divisible by the 8 devices"),
        (["model.vision.pretrained=/nonexistent/clip"], "/nonexistent/clip"),
        (["model.text.vocab_size=50"], "model.text.vocab_size"),
        (['train.phases=[{name="h", steps=2, trainable=["projection"], cache_frozen=true}]'], "augment"),
    ],
)
def test_bad_config_fails_fast_with_one_line(tiny_shards, tmp_path, extra, message):
    out = tmp_path / "run"
    result = _run(["train", *_sets(tiny_overrides(tiny_shards, out, *extra, "data.loader.augment=true"))])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.stderr
    assert not (out / "checkpoints").exists()


def test_missing_shards_folder(tmp_path):
    result = _run(["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "nope" in result.stderr


def test_list_params_prints_the_paths_regexes_select_from(tiny_shards, tmp_path):
    result = _run(["train", "--list-params", *_sets(tiny_overrides(tiny_shards, tmp_path / "run"))])
    assert result.exit_code == 0, result.stderr
    names = [line.split("\t")[0] for line in result.stdout.splitlines()]
    assert {"visual_projection/kernel", "text_projection/kernel", "logit_scale"} <= set(names)
    assert any(n.startswith("vision_model/") for n in names) and any(
        n.startswith("text_model/") for n in names
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ['train.phases=[{name="h", steps=2, trainable=["vision_model/(layers"]}]'],
            "key 'train.phases.0.trainable'",
        ),
        (
            [f"model.vision.image_size={SIDE - 2}"],
            f"vision.image_size {SIDE - 2} is not a multiple of vision.patch_size 8",
        ),
        (
            ["model.text.num_attention_heads=3"],
            "text.hidden_size 32 is not divisible by text.num_attention_heads 3",
        ),
        (["model.max_text_length=40"], "max_text_length 40 exceeds the 32 positions"),
        (['train.batch_size="16"'], "key 'train.batch_size': Input should be a valid integer (got '16')"),
        (["train.max_logit_scale=inf"], "key 'train.max_logit_scale': Input should be a finite number"),
        (["train.max_logit_scale=nan"], "key 'train.max_logit_scale': Input should be a finite number"),
        (["train.seed=-1"], "key 'train.seed'"),
    ],
)
def test_invalid_config_is_exit_2_at_load(tiny_shards, tmp_path, extra, message):
    out = tmp_path / "run"
    result = _run(["train", *_sets(tiny_overrides(tiny_shards, out, *extra))])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --set ") and message in lines[0], result.stderr
    assert not out.exists()


def test_text_longer_than_the_checkpoint_positions_fails_before_training(tiny_shards, tmp_path):
    bert = tiny_hf.save_tiny_bert(tmp_path / "bert")
    out = tmp_path / "run"
    extra = [f"model.text.pretrained={bert}", f"model.max_text_length={tiny_hf.MAX_POSITIONS + 1}"]
    result = _run(["train", *_sets(tiny_overrides(tiny_shards, out, *extra))])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    expected = (
        f"model.max_text_length {tiny_hf.MAX_POSITIONS + 1} exceeds the {tiny_hf.MAX_POSITIONS} positions"
    )
    assert len(lines) == 1 and expected in lines[0] and str(bert) in lines[0], result.stderr
    assert not (out / "checkpoints").exists() and not (out / "config.resolved.toml").exists()
