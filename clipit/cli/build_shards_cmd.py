"""`clipit build-shards`: merge source folders into train/val Parquet training shards."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from clipit.cli.guard import guarded
from clipit.cli.options import ConfigOpt, SetOpt, resolve
from clipit.config import save_resolved
from clipit.data import shards
from clipit.distribute import Distributor


@guarded
def build_shards(
    ctx: typer.Context,
    sources: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="SOURCE_DIR",
            help="Source folders (each with manifest.parquet) (config: data.shards.sources).",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder (config: data.shards.out).")
    ] = None,
    val_fraction: Annotated[
        float | None,
        typer.Option(
            "--val-fraction",
            min=0.0,
            max=0.999,
            help="Share of images held out (config: data.shards.val_fraction).",
        ),
    ] = None,
    exclude: Annotated[
        list[Path] | None,
        typer.Option(
            "--exclude",
            metavar="DIR|MANIFEST",
            help="An evaluation set whose images (same bytes or near-duplicates) are removed; repeatable "
            "(config: data.shards.exclude).",
            show_default=False,
        ),
    ] = None,
    distributor: Annotated[
        str | None,
        typer.Option(
            "--distributor",
            help="local (worker processes here) or ray: one Ray task per shard, on the cluster at "
            "data.shards.ray_address (config: data.shards.distributor).",
        ),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Filter, deduplicate, split by image and re-encode source images into Parquet shards; prints a summary table.

    Writes DIR/train-*.parquet, DIR/val-*.parquet, DIR/manifest.parquet (every input row, with its status) and DIR/summary.json.

    A rerun after an interruption keeps the finished shards. Details: docs/data.md.

    Examples:
      clipit build-shards --out shards sources/cc3m sources/wit
      clipit build-shards --out /tmp/shards sources/synthetic --val-fraction 0.1
      clipit build-shards --out shards sources/cc3m --exclude sources/mscoco-it-val --exclude imagenet-it/val
      clipit build-shards --set data.shards.image_side=224 --set data.shards.workers=4
      clipit build-shards --distributor ray --set data.shards.ray_address=auto
    """
    flags = {
        "data.shards.sources": ("SOURCE_DIR", sources),
        "data.shards.out": ("--out", out),
        "data.shards.val_fraction": ("--val-fraction", val_fraction),
        "data.shards.exclude": ("--exclude", exclude),
        "data.shards.distributor": ("--distributor", distributor),
    }
    cfg = resolve(ctx, config, set_, flags)
    section = cfg.data.shards
    # before the plan reads every source: a distributor that cannot run here is a config error now
    Distributor(section.distributor, address=section.ray_address, setting="data.shards.distributor").check()
    summary = shards.run(section)
    save_resolved(cfg, section.out)
    Console(highlight=False).print(shards.summary_table(summary))
    for line in shards.summary_lines(summary):
        typer.echo(line)
    typer.echo(
        f"{summary['ok']} rows in {sum(len(v) for v in summary['shards'].values())} shards: {Path(section.out)}"
    )
