"""`clipit config show`: print the resolved config (file + overrides + defaults) as TOML."""

from __future__ import annotations

import typer

from clipit.cli.guard import guarded
from clipit.cli.options import ConfigOpt, SetOpt, resolve
from clipit.config import to_toml

app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)


@app.command("show")
@guarded
def show(ctx: typer.Context, config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Print the resolved config as TOML on stdout.

    Examples:
      clipit config show
      clipit --config configs/tiny.toml config show --set train.batch_size=64
    """
    typer.echo(to_toml(resolve(ctx, config, set_)), nl=False)
