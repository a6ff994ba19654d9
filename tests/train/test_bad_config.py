"""Bad configs fail before any training compute, with one line on stderr and exit 2."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from clipit.cli.main import app
from tests.train.conftest import tiny_overrides


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
    assert any(n.startswith("vision_model/") for n in names) and any(n.startswith("text_model/") for n in names)
