"""`clipit init [DIR]`: write a commented clipit.toml with every key a full run needs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clipit import atomic
from clipit.cli.guard import guarded
from clipit.config import DEFAULT_CONFIG_NAME
from clipit.config.reference import render_commented_toml
from clipit.console import info
from clipit.errors import ConfigError


@guarded
def init(
    directory: Annotated[Path, typer.Argument(help="Project folder (created if missing).")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing clipit.toml.")] = False,
) -> None:
    """Write DIR/clipit.toml: every key at its default, each with a comment.

    Examples:
      clipit init my-project && cd my-project && clipit config show
    """
    target = directory / DEFAULT_CONFIG_NAME
    if target.exists() and not force:
        raise ConfigError(f"{target} already exists", "edit it, or pass --force to overwrite it")
    atomic.write_text(target, render_commented_toml())
    info(f"wrote {target}")
