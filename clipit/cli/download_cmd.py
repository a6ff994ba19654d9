"""`clipit download SOURCE`: the group; each source's command lives in its own module."""

from __future__ import annotations

import typer

app = typer.Typer(help="Download a dataset into a source folder (raw shards + manifest.parquet).", no_args_is_help=True)

# Each source module registers itself here, e.g. in clipit/cli/download_synthetic.py:
#   from clipit.cli.download_cmd import app
#   @app.command("synthetic") ...
# and is imported below so that registration happens.
