"""`clipit init [DIR] [--preset NAME]`: write a commented clipit.toml with every key a full run needs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clipit import atomic
from clipit.cli.guard import guarded
from clipit.config import DEFAULT_CONFIG_NAME
from clipit.config.load import packaged_config, packaged_names
from clipit.config.reference import render_commented_toml
from clipit.console import info
from clipit.errors import ConfigError


@guarded
def init(
    directory: Annotated[Path, typer.Argument(help="Project folder (created if missing).")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing clipit.toml.")] = False,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset", help="Start from a packaged config: tiny or clip-italian.", show_default=False
        ),
    ] = None,
) -> None:
    """Write DIR/clipit.toml: every key at its default, each with a comment (or a packaged config).

    Examples:
      clipit init my-project && cd my-project && clipit config show
      clipit init my-run --preset tiny && cd my-run && clipit download synthetic && clipit build-shards && clipit train
    """
    target = directory / DEFAULT_CONFIG_NAME
    source = packaged_config(preset) if preset is not None else None
    if preset is not None and source is None:
        raise ConfigError(
            f"--preset {preset}: no such packaged config", f"choose one of {', '.join(packaged_names())}"
        )
    if target.exists() and not force:
        raise ConfigError(f"{target} already exists", "edit it, or pass --force to overwrite it")
    atomic.write_text(
        target, source.read_text(encoding="utf-8") if source is not None else render_commented_toml()
    )
    info(f"wrote {target}")
