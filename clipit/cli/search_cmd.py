"""`clipit search`: rank an embedded folder by a text query or an image."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clipit.cli.guard import guarded
from clipit.cli.options import ConfigOpt, SetOpt, resolve


@guarded
def search(
    ctx: typer.Context,
    query: Annotated[
        str,
        typer.Argument(
            help="Italian text, or the path of an image file (which must exist).", show_default=False
        ),
    ],
    index: Annotated[
        Path | None, typer.Option("--index", help="Folder made by clipit embed DIR --out.")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model (default: the one that built the index).")
    ] = None,
    k: Annotated[
        int | None, typer.Option("-k", "--top", min=1, help="How many results (default 10).")
    ] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write an HTML contact sheet of the results.")
    ] = None,
    dtype: Annotated[str | None, typer.Option("--dtype", help="float32 (default) or bfloat16.")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Print the k best matches as rank, score and path (tab-separated).

    Examples:
      clipit search "un gatto nero su un divano" --index index/
      clipit search "due cerchi rossi" --index index/ -k 20 --html results.html
      clipit search query.jpg --index index/ --model runs/base
    """
    from clipit import search as searching

    flags = {
        "embed.index": ("--index", index),
        "embed.model": ("--model", model),
        "embed.k": ("-k", k),
        "embed.dtype": ("--dtype", dtype),
    }
    section = resolve(ctx, config, set_, flags).embed
    for hit in searching.run(section, query, html_out=html):
        typer.echo(f"{hit.rank}\t{hit.score:.4f}\t{hit.path}")
