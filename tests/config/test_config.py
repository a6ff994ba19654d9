"""The config tree: defaults, overrides, strictness, error messages, round trip."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from clipit.config import Config, load_config, parse_override, save_resolved, to_toml
from clipit.config.reference import render_commented_toml, render_markdown
from clipit.errors import ConfigError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "config.md"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config()
    assert cfg == Config()
    assert cfg.train.batch_size == 256
    assert [p.name for p in cfg.train.phases] == ["heads", "all"]
    assert cfg.model.max_text_length == 96


def test_default_file_in_current_folder_is_used(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "clipit.toml", "[train]\nbatch_size = 32\n")
    assert load_config().train.batch_size == 32


def test_file_values_and_overrides(tmp_path):
    path = write(
        tmp_path / "c.toml", '[train]\nbatch_size = 32\nout = "runs/a"\n[model.vision]\npatch_size = 8\n'
    )
    cfg = load_config(path, ["train.batch_size=64", "train.out=runs/b", "model.dtype=bfloat16"])
    assert cfg.train.batch_size == 64
    assert cfg.train.out == Path("runs/b")  # a bare word is taken as a string
    assert cfg.model.vision.patch_size == 8
    assert cfg.model.dtype == "bfloat16"


def test_override_values_are_toml(tmp_path):
    cfg = load_config(None, ['data.wit.tsv=["a.tsv.gz", "b.tsv.gz"]', "train.multi_positive=false"])
    assert cfg.data.wit.tsv == [Path("a.tsv.gz"), Path("b.tsv.gz")]
    assert cfg.train.multi_positive is False


def test_override_into_default_phase_list():
    cfg = load_config(None, ["train.phases.1.lr=0.5"])
    assert cfg.train.phases[1].lr == 0.5
    assert cfg.train.phases[0].lr == Config().train.phases[0].lr


def test_unknown_key_names_file_key_and_suggestion(tmp_path):
    path = write(tmp_path / "bad.toml", "[train]\nbatchsize = 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    line = info.value.one_line()
    assert "bad.toml" in line and "train.batchsize" in line and "train.batch_size" in line


def test_unknown_section(tmp_path):
    path = write(tmp_path / "bad.toml", "[trian]\nbatch_size = 3\n")
    with pytest.raises(ConfigError, match="unknown key 'trian'.*did you mean 'train'"):
        load_config(path)


def test_unknown_key_from_override_names_the_override():
    with pytest.raises(ConfigError) as info:
        load_config(None, ["model.vison.patch_size=8"])
    assert "--set model.vison" in info.value.one_line()
    assert "model.vision" in info.value.one_line()


def test_wrong_type_names_key_and_value(tmp_path):
    path = write(tmp_path / "bad.toml", '[train]\nbatch_size = "many"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    line = info.value.one_line()
    assert "bad.toml" in line and "train.batch_size" in line and "'many'" in line


def test_wrong_type_inside_phase_list(tmp_path):
    path = write(tmp_path / "bad.toml", '[[train.phases]]\nname = "a"\nsteps = 10\nlr = "fast"\n')
    with pytest.raises(ConfigError, match=r"train\.phases\.0\.lr"):
        load_config(path)


def test_phase_needs_steps_or_epochs(tmp_path):
    path = write(tmp_path / "bad.toml", '[[train.phases]]\nname = "a"\n')
    with pytest.raises(ConfigError, match="exactly one of 'steps' or 'epochs'"):
        load_config(path)


def test_invalid_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(write(tmp_path / "broken.toml", "[train\n"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.parametrize("item", ["novalue", "=3", ""])
def test_malformed_override(item):
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override(item)


def test_config_is_immutable():
    cfg = Config()
    with pytest.raises(ValidationError, match="frozen"):
        cfg.train.batch_size = 3  # type: ignore[misc]


def test_resolved_config_round_trip(tmp_path):
    cfg = load_config(None, ["train.batch_size=48", "data.wit.tsv=['x.tsv']", "train.phases.0.steps=7"])
    written = save_resolved(cfg, tmp_path / "run")
    assert written.name == "config.resolved.toml"
    assert load_config(written) == cfg
    assert tomllib.loads(to_toml(cfg))["train"]["batch_size"] == 48


def test_commented_init_file_loads_to_defaults(tmp_path):
    path = write(tmp_path / "clipit.toml", render_commented_toml())
    assert load_config(path) == Config()


def test_docs_config_md_is_current():
    assert DOCS.read_text(encoding="utf-8") == render_markdown(), "docs/config.md is stale: run `make docs`"


def test_docs_list_every_key():
    text = render_markdown()
    for key in ("batch_size", "max_text_length", "val_fraction", "requests_per_second", "shard_size"):
        assert f"`{key}`" in text
