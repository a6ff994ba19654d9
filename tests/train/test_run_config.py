"""What a resume may change: the allow-list of harmless keys, and every other training key refused by name."""

from __future__ import annotations

import pytest

from clipit.config import load_config, save_resolved
from clipit.errors import ConfigError
from clipit.train.run_config import check_resume, run_config


@pytest.fixture
def run_dir(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    save_resolved(run_config(load_config("tiny"), data=tmp_path / "shards", out=folder), folder)
    return folder


def given(run_dir, *overrides):
    return run_config(load_config(run_dir / "config.resolved.toml", list(overrides)))


@pytest.mark.parametrize(
    "override",
    [
        "train.log_every=1",
        "train.eval_every=7",
        "train.checkpoint_every=9",
        "train.keep_checkpoints=5",
        "train.export=false",
        "data.loader.workers=2",
        "translate.to=de",  # a section training does not read
    ],
)
def test_harmless_changes_are_allowed(run_dir, override):
    check_resume(given(run_dir, override), run_dir)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("model.projection_dim=32", "model.projection_dim"),
        ("train.phases.1.lr=0.1", "train.phases.1.lr"),
        ("train.batch_size=64", "train.batch_size"),
        ("train.seed=3", "train.seed"),
        ("data.loader.augment=true", "data.loader.augment"),
    ],
)
def test_maths_changes_are_refused_naming_the_key(run_dir, override, key):
    with pytest.raises(ConfigError, match=f"--resume: {key.replace('.', '[.]')} is "):
        check_resume(given(run_dir, override), run_dir)


def test_an_added_phase_is_refused(run_dir):
    phases = 'train.phases=[{name="a", steps=1}, {name="b", steps=1}, {name="c", steps=1}]'
    with pytest.raises(ConfigError, match=r"--resume: train[.]phases[.]0[.]"):
        check_resume(given(run_dir, phases), run_dir)
