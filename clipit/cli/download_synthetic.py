"""`clipit download synthetic`: draw the synthetic Italian dataset (shapes, colours, counts, relations)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clipit.cli.guard import guarded
from clipit.cli.options import ConfigOpt, SetOpt, load, with_flags
from clipit.config import save_resolved
from clipit.console import info
from clipit.data import synthetic


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
    cfg = load(ctx, config, set_)
    cfg = with_flags(cfg, {"data.synthetic.out": out, "data.synthetic.n": n, "data.synthetic.seed": seed})
    section = cfg.data.synthetic
    summary = synthetic.generate(section, val_fraction=cfg.data.shards.val_fraction)
    save_resolved(cfg, section.out)
    info(
        f"{summary['images']} images with {summary['captions']} captions ({summary['train']} train, {summary['val']} val) "
        f"in {summary['shards']} shard(s), "
        f"{summary['retrieval']['images']} retrieval images, zero-shot sets {', '.join(summary['zeroshot'])} "
        f"in {summary['seconds']} s"
    )
    typer.echo(str(Path(section.out) / "manifest.parquet"))
