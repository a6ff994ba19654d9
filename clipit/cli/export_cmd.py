"""`clipit export RUN_DIR --out DIR [--best | --step N]`: a run's checkpoint as an HF VisionTextDualEncoder folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clipit.cli.guard import guarded
from clipit.cli.options import ConfigOpt, SetOpt, resolve
from clipit.errors import ConfigError
from clipit.runs.model_card import DEFAULT_LICENSE


@guarded
def export(
    ctx: typer.Context,
    run_dir: Annotated[Path, typer.Argument(help="A clipit run folder (clipit train --out).")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write (replaces an earlier export).")],
    step: Annotated[
        int | None,
        typer.Option("--step", help="Export this checkpoint step instead of the latest.", show_default=False),
    ] = None,
    best: Annotated[
        bool,
        typer.Option(
            "--best",
            help="Export the kept checkpoint that is best by the run's train.best_by (default: lowest val loss).",
        ),
    ] = False,
    license_id: Annotated[
        str,
        typer.Option(
            "--license",
            help="License id in the model card's header (the data's and base models' terms apply).",
        ),
    ] = DEFAULT_LICENSE,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Export a run for transformers: `VisionTextDualEncoderModel.from_pretrained(DIR)` loads it.

    The folder holds config.json, model.safetensors, the tokenizer (its model_max_length is the run's
    model.max_text_length), preprocessor_config.json and README.md, a model card with the Hub's header
    and the run's validation metrics. Prints the folder written on stdout.

    Examples:
      clipit export runs/tiny --out models/tiny-it
      clipit export runs/clip-italian --out models/clip-italian --step 5000
      clipit export runs/clip-italian --out models/clip-italian --best --license apache-2.0
    """
    resolve(ctx, config, set_)  # validates --config/--set like every command; the run's own config is used
    if best and step is not None:
        raise ConfigError("export: --best and --step both name a checkpoint", "pass one of them")
    from clipit.runs.export import export_run

    typer.echo(str(export_run(run_dir, out, step=step, best=best, license=license_id)))
