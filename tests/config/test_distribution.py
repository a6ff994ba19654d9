"""The distribution is `clipit-jax` (`clipit` on PyPI is an unrelated project); the command and the import
name stay `clipit`, and the WIT user agent names this project, not the other one."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_distribution_name_keeps_the_clipit_command():
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    assert project["name"] == "clipit-jax"
    assert project["scripts"] == {"clipit": "clipit.cli.main:main"}


def test_the_download_user_agent_names_this_project(tmp_path):
    shown = subprocess.run(
        [sys.executable, "-m", "clipit.cli.main", "config", "show"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0, shown.stderr
    agent = tomllib.loads(shown.stdout)["data"]["download"]["user_agent_token"]
    assert "clipit-jax" in agent and "pypi.org/project/clipit;" not in agent and "project/clipit-jax" in agent
