"""`clipit download synthetic`: draw the synthetic Italian dataset (shapes, colours, counts, relations)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clipit.cli.download_run import Source, download
from clipit.cli.guard import guarded
from clipit.cli.options import ConfigOpt, SetOpt
from clipit.console import info
from clipit.data import synthetic


def _report(summary: dict) -> None:
    info(
        f"{summary['images']} images with {summary['captions']} captions ({summary['train']} train, {summary['val']} val) "
        f"in {summary['shards']} shard(s), "
        f"{summary['retrieval']['images']} retrieval images, zero-shot sets {', '.join(summary['zeroshot'])} "
        f"in {summary['seconds']} s"
    )


SOURCE = Source(
    "synthetic",
    lambda cfg: synthetic.generate(cfg.data.synthetic, val_fraction=cfg.data.shards.val_fraction),
    _report,
)


@guarded
def download_synthetic(
    ctx: typer.Context,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder (config: data.synthetic.out).")
    ] = None,
    n: Annotated[
        int | None,
        typer.Option(
            "--n",
            min=1,
            help="Training images, each with data.synthetic.captions_per_image captions (config: data.synthetic.n).",
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed", help="Seed; the same seed gives the same bytes (config: data.synthetic.seed)."
        ),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Draw the synthetic dataset offline; prints the manifest path.

    Writes img2dataset-style tar shards + manifest.parquet (build-shards treats it like CC3M), with several captions per image as in MSCOCO-IT: one manifest row per image-caption pair, split by image.

    Also: tokenizer/ (covers every caption word), zeroshot/ (colour, shape, count, held-out compositions, relations), retrieval/ (COCO captions JSON). Layout: docs/data.md.

    Examples:
      clipit download synthetic --out sources/synthetic
      clipit download synthetic --out /tmp/syn --n 40000 --seed 1
      clipit download synthetic --set data.synthetic.image_size=96
      clipit download synthetic --set data.synthetic.captions_per_image=5
    """
    flags = {
        "data.synthetic.out": ("--out", out),
        "data.synthetic.n": ("--n", n),
        "data.synthetic.seed": ("--seed", seed),
    }
    download(ctx, config, set_, SOURCE, flags)
