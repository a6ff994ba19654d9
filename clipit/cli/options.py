"""Options shared by every command, and the one way a command's flags reach the config.

`--config` and `--set` are accepted before the command (`clipit --config F train`) and after it
(`clipit train --config F`); the root callback keeps the first in `ctx.obj`. A command-level `--config`
wins, and `--set` items apply in order, root ones first.

A command's own flags (`--out`, `--n`, `--batch-size`, ...) are config keys too: `resolve` turns each
given flag into a `--set KEY=VALUE` item placed after every `--set`, and hands the whole list to the one
config loader. So `--n 7` and `--set data.synthetic.n=7` give the same config, pass the same checks,
and a flag overrides both the file and `--set`; an error about a flag's value names the flag.
With `CLIPIT_DEBUG=1` the resolved config is printed on stderr before the command does any work.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import tomli_w
import typer

from clipit.cli.guard import debug_enabled
from clipit.config import Config, load_config, to_toml

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="TOML config file, or a packaged one by name: tiny, clip-italian (default: ./clipit.toml when present).",
        show_default=False,
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        help="Override a config key: --set train.batch_size=64 (repeatable).",
        show_default=False,
    ),
]

# With CLIPIT_DEBUG=1 every command prints its resolved config on stderr between these lines.
RESOLVED_BEGIN = "--- resolved config ---"
RESOLVED_END = "--- end of resolved config ---"

# A command's flags: config key -> (the flag as the user types it, its value; None or [] = not given).
Flags = Mapping[str, tuple[str, Any]]


def config_source(
    ctx: typer.Context, config: Path | None, set_: list[str] | None
) -> tuple[Path | None, list[str]]:
    """The config file named before or after the command, and every `--set` item in order."""
    root = ctx.obj or {}
    path = config if config is not None else root.get("config")
    return path, [*root.get("set", []), *(set_ or [])]


def resolve(
    ctx: typer.Context,
    config: Path | None,
    set_: list[str] | None,
    flags: Flags | None = None,
    *,
    default: Path | None = None,
) -> Config:
    """The command's config: file (or `default` when no --config is named), then --set, then its flags."""
    path, items = config_source(ctx, config, set_)
    if path is None:
        path = default
    given = {key: value for key, (_, value) in (flags or {}).items() if value is not None and value != []}
    items += [f"{key}={toml_value(value)}" for key, value in given.items()]
    origins = {key: flag for key, (flag, _) in (flags or {}).items() if key in given}
    cfg = load_config(path, items, origins)
    if debug_enabled():  # what the command really runs with, before any work
        typer.echo(f"{RESOLVED_BEGIN}\n{to_toml(cfg)}{RESOLVED_END}", err=True)
    return cfg


def toml_value(value: Any) -> str:
    """A flag's value as the TOML text `--set` takes (paths as strings), so that it parses back to itself."""
    plain = [str(v) if isinstance(v, Path) else v for v in value] if isinstance(value, list) else value
    plain = str(plain) if isinstance(plain, Path) else plain
    return tomli_w.dumps({"v": plain}).removeprefix("v = ").strip()
