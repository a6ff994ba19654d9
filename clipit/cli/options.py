"""Options shared by every command, as reusable `Annotated` aliases.

`--config` and `--set` are accepted before the command (`clipit --config F train`) and after it
(`clipit train --config F`); the root callback keeps the first in `ctx.obj`, and `load` merges both:
a command-level `--config` wins, and `--set` items apply in order, root ones first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from clipit.config import Config, load_config, validate_config

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


def load(ctx: typer.Context, config: Path | None, overrides: list[str] | None) -> Config:
    root = ctx.obj or {}
    path = config if config is not None else root.get("config")
    items = [*root.get("set", []), *(overrides or [])]
    return load_config(path, items)


def with_flags(cfg: Config, flags: dict[str, Any]) -> Config:
    """`cfg` with the command's flags (dotted keys; None = not given) applied and validated like the file,
    so `--limit 0` fails the same check as `limit = 0` in clipit.toml."""
    given = {key: value for key, value in flags.items() if value is not None}
    if not given:
        return cfg
    raw = cfg.model_dump(mode="json", exclude_none=True)
    for key, value in given.items():
        *parents, leaf = key.split(".")
        node = raw
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return validate_config(raw, source="command-line flags")
