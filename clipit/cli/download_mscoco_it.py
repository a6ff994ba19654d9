"""`clipit download mscoco-it`: MSCOCO-IT caption files (+ local COCO images or COCO URLs) -> manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clipit.cli.download_run import Source, download
from clipit.cli.guard import guarded
from clipit.cli.options import ConfigOpt, SetOpt
from clipit.data.sources import mscoco_it as mscoco_it_source

SOURCE = Source(
    "mscoco_it",
    lambda cfg: mscoco_it_source.run(cfg.data.mscoco_it, cfg.data.download, cfg.data.shards.val_fraction),
)


@guarded
def mscoco_it(
    ctx: typer.Context,
    annotations: Annotated[
        list[Path] | None,
        typer.Option(
            "--annotations", help="MSCOCO-IT caption JSON file(s) (config: data.mscoco_it.annotations)."
        ),
    ] = None,
    more_annotations: Annotated[
        list[Path] | None,
        typer.Argument(help="More caption files, so that `--annotations *.json` works.", show_default=False),
    ] = None,
    annotations_en: Annotated[
        list[Path] | None,
        typer.Option(
            "--annotations-en",
            help="English COCO caption JSON file(s) for caption_en (config: data.mscoco_it.annotations_en).",
        ),
    ] = None,
    images: Annotated[
        Path | None,
        typer.Option(
            "--images",
            help="Local COCO images folder; without it images are downloaded (config: data.mscoco_it.images).",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder (config: data.mscoco_it.out).")
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Build the manifest of MSCOCO-IT (Italian COCO captions); prints the manifest path.

    With --images the manifest points at the local files (nothing is copied); without it the images are fetched from COCO's URLs through img2dataset.

    Examples:
      clipit download mscoco-it --annotations captions_ita_trainingset_train2014.json --images coco/train2014 --out sources/mscoco-it
      clipit download mscoco-it --annotations captions_ita_*.json --annotations-en captions_train2014.json --out sources/mscoco-it
    """
    flags = {
        "data.mscoco_it.annotations": ("--annotations", [*(annotations or []), *(more_annotations or [])]),
        "data.mscoco_it.annotations_en": ("--annotations-en", annotations_en),
        "data.mscoco_it.images": ("--images", images),
        "data.mscoco_it.out": ("--out", out),
    }
    download(ctx, config, set_, SOURCE, flags)
