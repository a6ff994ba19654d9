"""`clipit download cc3m`: Conceptual Captions' TSV -> images/*.tar + manifest.parquet + summary.json."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from clipit.cli.download_run import Source, download
from clipit.cli.guard import guarded
from clipit.cli.options import ConfigOpt, SetOpt
from clipit.data.sources import cc3m as cc3m_source

SOURCE = Source(
    "cc3m", lambda cfg: cc3m_source.run(cfg.data.cc3m, cfg.data.download, cfg.data.shards.val_fraction)
)


@guarded
def cc3m(
    ctx: typer.Context,
    tsv: Annotated[
        Path | None,
        typer.Option("--tsv", help="Google's header-less caption<TAB>url file (config: data.cc3m.tsv)."),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder (config: data.cc3m.out).")] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Only the first N rows (config: data.cc3m.limit).")
    ] = None,
    distributor: Annotated[
        Literal["multiprocessing", "pyspark", "ray"] | None,
        typer.Option(
            "--distributor", help="img2dataset distributor for clusters (config: data.download.distributor)."
        ),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Download Conceptual Captions 3M through img2dataset; prints the manifest path.

    A rerun resumes: finished shards are not downloaded again.

    Captions stay English (caption_en) until `clipit translate` fills the Italian ones.

    Examples:
      clipit download cc3m --tsv Train_GCC-training.tsv --out sources/cc3m
      clipit download cc3m --tsv Train_GCC-training.tsv --out /tmp/cc3m-trial --limit 1000
      clipit download cc3m --set data.download.threads=64 --distributor pyspark
    """
    flags = {
        "data.cc3m.tsv": ("--tsv", tsv),
        "data.cc3m.out": ("--out", out),
        "data.cc3m.limit": ("--limit", limit),
        "data.download.distributor": ("--distributor", distributor),
    }
    download(ctx, config, set_, SOURCE, flags)
