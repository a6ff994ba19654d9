"""`clipit export RUN_DIR --out DIR`: a run's latest checkpoint as an HF VisionTextDualEncoder folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clipit.cli.guard import guarded
from clipit.cli.options import ConfigOpt, SetOpt, load


@guarded
def export(
    ctx: typer.Context,
    run_dir: Annotated[Path, typer.Argument(help="A clipit run folder (clipit train --out).")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write (replaces an earlier export).")],
    step: Annotated[
        int | None, typer.Option("--step", help="Export this checkpoint step instead of the latest.", show_default=False)
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Export a run for transformers: `VisionTextDualEncoderModel.from_pretrained(DIR)` loads it.

    Prints the folder written on stdout.

    Examples:
      clipit export runs/tiny --out models/tiny-it
      clipit export runs/clip-italian --out models/clip-italian --step 5000
    """
    load(ctx, config, set_)  # validates --config/--set like every command; the run's own config is used
    from clipit.train.restore import export_run

    typer.echo(str(export_run(run_dir, out, step=step)))
