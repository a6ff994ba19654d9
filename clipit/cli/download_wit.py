"""`clipit download wit`: WIT's TSVs -> one language's images/*.tar + manifest.parquet + summary.json."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clipit.cli.download_run import Source, download
from clipit.cli.guard import guarded
from clipit.cli.options import ConfigOpt, SetOpt
from clipit.data.sources import wit as wit_source

SOURCE = Source(
    "wit", lambda cfg: wit_source.run(cfg.data.wit, cfg.data.download, cfg.data.shards.val_fraction)
)


@guarded
def wit(
    ctx: typer.Context,
    tsv: Annotated[
        list[Path] | None,
        typer.Option("--tsv", help="WIT TSV file(s), gzipped or not (config: data.wit.tsv)."),
    ] = None,
    more_tsv: Annotated[
        list[Path] | None,
        typer.Argument(help="More TSV files, so that `--tsv wit/*.tsv.gz` works.", show_default=False),
    ] = None,
    lang: Annotated[
        str | None, typer.Option("--lang", help="Language to keep (config: data.wit.lang).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder (config: data.wit.out).")] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, help="Only the first N kept rows (config: data.wit.limit)."),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Download one language of WIT (Wikipedia images with their reference descriptions); prints the manifest path.

    Rows with an empty description, a non-JPEG/PNG image or (data.wit.proper_noun_filter) a description that is mostly proper nouns stay in the manifest as 'filtered'. Wikimedia refuses generic user agents: set data.download.user_agent_token to something that names you.

    Examples:
      clipit download wit --tsv wit/wit_v1.train.all-*.tsv.gz --lang it --out sources/wit
      clipit download wit --tsv wit_v1.train.all-00000-of-00010.tsv.gz --lang it --out /tmp/wit-trial --limit 500
    """
    flags = {
        "data.wit.tsv": ("--tsv", [*(tsv or []), *(more_tsv or [])]),
        "data.wit.lang": ("--lang", lang),
        "data.wit.out": ("--out", out),
        "data.wit.limit": ("--limit", limit),
    }
    download(ctx, config, set_, SOURCE, flags)
