"""`clipit train`: run the phases of [train] on a shards folder; checkpoints, metrics and export in RUN_DIR."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from clipit.cli.guard import guarded
from clipit.cli.options import ConfigOpt, SetOpt, resolve
from clipit.config import RESOLVED_CONFIG_NAME


@guarded
def train(
    ctx: typer.Context,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", help="Shards folder from build-shards (config: train.data).", show_default=False
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Run folder (config: train.out).", show_default=False)
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue the run in --out from its last checkpoint, with the config saved in it "
            "(only logging, eval and checkpoint cadence and loader workers may change).",
        ),
    ] = False,
    list_params: Annotated[
        bool,
        typer.Option("--list-params", help="Print the parameter paths phase regexes select from, and exit."),
    ] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Train the dual encoder: every phase listed in train.phases, in order, in one loop.

    Writes RUN_DIR/checkpoints, metrics.jsonl, tensorboard/, curves.png and export/ (HF format);
    prints a JSON summary on stdout. Progress and validation lines go to stderr.

    Examples:
      clipit download synthetic --out sources/synthetic && clipit build-shards --out shards sources/synthetic
      clipit train --config tiny --data shards --out runs/tiny
      clipit train --out runs/tiny --resume    # after an interruption: the run folder is enough
      clipit train --config clip-italian --set train.batch_size=512
      clipit train --config clip-italian --list-params
    """
    flags = {"train.data": ("--data", data), "train.out": ("--out", out)}
    cfg = resolve(ctx, config, set_, flags, default=_run_config_file(out) if resume else None)
    if list_params:
        from clipit.train.phases import parameter_shapes

        for name, shape in parameter_shapes(cfg.model):
            typer.echo(f"{name}\t{list(shape)}")
        return
    from clipit.train.loop import train_and_evaluate  # jax is slow to import: only when training

    summary = train_and_evaluate(cfg, resume=resume)
    typer.echo(json.dumps(summary, indent=2))


def _run_config_file(out: Path | None) -> Path | None:
    """With --resume --out RUN and no --config, RUN's saved config is the file the flags and --set
    apply to: the working directory's clipit.toml plays no part. None when RUN has none yet."""
    if out is None:
        return None
    saved = out / RESOLVED_CONFIG_NAME
    return saved if saved.is_file() else None
