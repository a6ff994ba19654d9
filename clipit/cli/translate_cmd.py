"""`clipit translate`: fill a manifest's target-language captions from `caption_en`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clipit.cli.guard import guarded
from clipit.cli.options import ConfigOpt, SetOpt, resolve


@guarded
def translate(
    ctx: typer.Context,
    input: Annotated[
        Path | None, typer.Option("--input", "-i", help="Manifest (file or folder) to translate.")
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="Target language code, e.g. it.")] = None,
    backend: Annotated[
        str | None,
        typer.Option("--backend", help="google (default), deepl, microsoft, libre, mymemory or marian."),
    ] = None,
    endpoint: Annotated[str | None, typer.Option("--endpoint", help="Server URL (libre backend).")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Manifest to write (default: overwrite the input).")
    ] = None,
    sample: Annotated[
        int | None, typer.Option("--sample", help="Write a review sheet (CSV + HTML) of N rows.", min=0)
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Translate `caption_en` into `caption` for rows that lack a target-language caption.

    Identical captions are sent once, results go to a persistent cache (translate.cache) as they
    arrive, and many captions are packed into one request: a rerun, or a run after a kill, only pays
    for what is missing. The output manifest path is printed on stdout; the summary goes to stderr.

    Examples:
      clipit translate --input sources/cc3m --to it
      clipit translate --input sources/cc3m --to it --backend libre --endpoint http://localhost:5000/
      clipit translate --input sources/synthetic --to it --backend marian --sample 100
      clipit translate --to it --set translate.concurrency=8 --set translate.requests_per_second=20
    """
    from clipit.data import translate as translating  # keeps `clipit --help` fast

    flags = {
        "translate.input": ("--input", input),
        "translate.to": ("--to", to),
        "translate.backend": ("--backend", backend),
        "translate.endpoint": ("--endpoint", endpoint),
        "translate.output": ("--output", output),
        "translate.sample": ("--sample", sample),
    }
    summary = translating.run(resolve(ctx, config, set_, flags).translate)
    translating.report(summary)
    typer.echo(str(summary.output))
