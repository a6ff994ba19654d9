"""`clipit serve`: a JSON API and a web page over an embedded folder, the model loaded once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clipit.cli.guard import guarded
from clipit.cli.options import ConfigOpt, SetOpt, resolve


@guarded
def serve(
    ctx: typer.Context,
    index: Annotated[
        Path | None, typer.Option("--index", help="Folder made by clipit embed DIR --out.")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model (default: the one that built the index).")
    ] = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (loopback by default).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    dtype: Annotated[str | None, typer.Option("--dtype", help="float32 (default) or bfloat16.")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Serve search, zero-shot classification and a web page at http://HOST:PORT/.

    API: GET /api/health, GET /api/search?q=TEXT&k=K, POST /api/search (multipart image),
    POST /api/classify (multipart image + labels), POST /knn-service (clip-retrieval's back end).

    Examples:
      clipit serve --index index/
      clipit serve --index index/ --model runs/base --port 8080
    """
    from clipit.serve.server import run

    flags = {
        "embed.index": ("--index", index),
        "embed.model": ("--model", model),
        "embed.dtype": ("--dtype", dtype),
    }
    section = resolve(ctx, config, set_, flags).embed
    run(section, host=host, port=port)
