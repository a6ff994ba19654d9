"""The CLI frame: help, global options before and after the command, exit codes, real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib

import pytest
from typer.testing import CliRunner

from clipit.cli.main import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.output.startswith("clipit ")


def test_config_before_and_after_the_command(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[train]\nbatch_size = 12\n")
    before = invoke("--config", str(cfg), "config", "show")
    after = invoke("config", "show", "--config", str(cfg))
    assert before.exit_code == after.exit_code == 0
    assert tomllib.loads(before.stdout)["train"]["batch_size"] == 12
    assert before.stdout == after.stdout


def test_set_before_and_after_apply_in_order(tmp_path):
    result = invoke("--set", "train.batch_size=8", "config", "show", "--set", "train.seed=5")
    data = tomllib.loads(result.stdout)
    assert (data["train"]["batch_size"], data["train"]["seed"]) == (8, 5)
    later_wins = invoke("--set", "train.seed=1", "config", "show", "--set", "train.seed=2")
    assert tomllib.loads(later_wins.stdout)["train"]["seed"] == 2


def test_unknown_key_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nbatchsize = 3\n")
    result = invoke("--config", str(bad), "config", "show")
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "train.batchsize" in lines[0] and "bad.toml" in lines[0] and "train.batch_size" in lines[0]
    assert "Traceback" not in result.output


def test_usage_error_is_exit_2():
    assert invoke("config", "show", "--no-such-flag").exit_code == 2
    assert invoke("no-such-command").exit_code == 2


def test_init_writes_a_loadable_commented_file(tmp_path):
    result = invoke("init", str(tmp_path / "proj"))
    assert result.exit_code == 0
    text = (tmp_path / "proj" / "clipit.toml").read_text()
    assert "# Global batch" in text
    shown = invoke("--config", str(tmp_path / "proj" / "clipit.toml"), "config", "show")
    assert shown.exit_code == 0
    again = invoke("init", str(tmp_path / "proj"))
    assert again.exit_code == 2 and "--force" in again.stderr


def run_clipit(*args: str, env: dict | None = None, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "clipit.cli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=120,
    )


def test_real_subprocess_exit_codes_and_streams(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nprojection_dimm = 3\n")
    proc = run_clipit("--config", str(bad), "config", "show", env={"CLIPIT_DEBUG": ""})
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0
    assert "model.projection_dimm" in proc.stderr and "model.projection_dim" in proc.stderr

    debug = run_clipit("--config", str(bad), "config", "show", env={"CLIPIT_DEBUG": "1"})
    assert debug.returncode != 0 and "Traceback" in debug.stderr

    ok = run_clipit("config", "show", cwd=tmp_path)
    assert ok.returncode == 0 and "[train]" in ok.stdout


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["search", "q", "--dtype", "float16"], "--dtype: key 'embed.dtype'"),
        (["eval", "retrieval", "--dataset", "cifar"], "--dataset: key 'eval.retrieval.dataset'"),
    ],
)
def test_a_flag_is_validated_like_the_config_file_and_named_in_the_error(args, named):
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert named in result.stderr and len(result.stderr.strip().splitlines()) == 1
    # the same value through --set fails the same check, named as --set
    key = named.split("'")[1]
    value = args[args.index(named.split(":")[0]) + 1]
    by_set = invoke(*[a for a in args if a not in (named.split(":")[0], value)], "--set", f"{key}={value}")
    assert by_set.exit_code == 2 and f"--set {key}: key '{key}'" in by_set.stderr
