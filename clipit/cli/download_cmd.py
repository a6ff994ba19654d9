"""`clipit download SOURCE`: the group; each source's command lives in its own module."""

from __future__ import annotations

import typer

from clipit.cli import download_cc3m, download_mscoco_it, download_synthetic, download_wit

app = typer.Typer(
    help="Download a dataset into a source folder (raw shards + manifest.parquet).", no_args_is_help=True
)
app.command("synthetic")(download_synthetic.download_synthetic)
app.command("cc3m")(download_cc3m.cc3m)
app.command("wit")(download_wit.wit)
app.command("mscoco-it")(download_mscoco_it.mscoco_it)
