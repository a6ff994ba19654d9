"""`clipit eval zero-shot | retrieval`: metrics of one or several models, side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clipit.cli.guard import guarded
from clipit.cli.options import ConfigOpt, SetOpt, resolve
from clipit.config.eval import EvalConfig

app = typer.Typer(
    help="Evaluate models: zero-shot classification and text-image retrieval.", no_args_is_help=True
)

ModelOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--model",
        "-m",
        help="clipit run folder, HF VisionTextDualEncoder folder or hub id (repeatable).",
        show_default=False,
    ),
]
OutputOpt = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        show_default=False,
        help="Metrics JSON that `clip_benchmark build` reads; with several models one file per model, F-<model>.json.",
    ),
]
PlotOpt = Annotated[
    Path | None,
    typer.Option(
        "--plot", help="Bar-chart PNG (default with several models: beside --output).", show_default=False
    ),
]
BatchOpt = Annotated[
    int | None, typer.Option("--batch-size", "-b", min=1, help="Images or texts per forward pass.")
]
DtypeOpt = Annotated[str | None, typer.Option("--dtype", help="float32 (default) or bfloat16.")]


def _shared_flags(model, output, plot, batch_size, dtype) -> dict:
    """The flags both eval commands have, as config keys (no --model keeps eval.model)."""
    return {
        "eval.model": ("--model", model),
        "eval.output": ("--output", output),
        "eval.plot": ("--plot", plot),
        "eval.batch_size": ("--batch-size", batch_size),
        "eval.dtype": ("--dtype", dtype),
    }


def _check_outputs(cfg: EvalConfig) -> EvalConfig:
    """Output paths are checked before any model is loaded, so a bad one loses no work."""
    from clipit.outputs import check_output_file

    if cfg.output is not None:
        check_output_file(cfg.output, "--output")
    if cfg.plot is not None:
        check_output_file(cfg.plot, "--plot")
    return cfg


def _report(cfg: EvalConfig, results) -> None:
    from clipit.console import info
    from clipit.eval import report

    typer.echo(report.format_table(results), nl=False)
    if cfg.output is not None:
        for path in report.write_json(results, cfg.output):
            info(f"wrote {path}")
    plot = cfg.plot
    if plot is None and len(results) > 1 and cfg.output is not None:
        plot = cfg.output.with_suffix(".png")
    if plot is not None:
        report.plot_bars(results, plot)
        info(f"wrote {plot}")


@app.command("zero-shot")
@guarded
def zero_shot(
    ctx: typer.Context,
    dataset: Annotated[str | None, typer.Option("--dataset", help="imagenet-it or synthetic.")] = None,
    model: ModelOpt = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="Images: one folder per class (ImageNet val layout).")
    ] = None,
    classnames: Annotated[
        Path | None,
        typer.Option("--classnames", help="CLIP_benchmark JSON or CLIP-Italian TSV (default: download)."),
    ] = None,
    templates: Annotated[
        Path | None, typer.Option("--templates", help="Templates JSON or text (default: download).")
    ] = None,
    labels: Annotated[
        Path | None, typer.Option("--labels", help="'file<TAB>label' lines for a flat image folder.")
    ] = None,
    output: OutputOpt = None,
    plot: PlotOpt = None,
    batch_size: BatchOpt = None,
    dtype: DtypeOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Zero-shot classification: top-1/5/10/100 accuracy and mean per-class recall.

    Class names and templates default to CLIP_benchmark's Italian files, downloaded once into
    eval.cache_dir and checked by sha256. `--dataset synthetic` reports each attribute (colour, shape,
    count, held-out compositions, relations) with its chance level.

    Examples:
      clipit eval zero-shot --dataset imagenet-it --model runs/base --data imagenet/val
      clipit eval zero-shot --dataset imagenet-it --model clip-italian/clip-italian --data val \\
          --classnames imagenet_labels_IT.tsv --output it.json
      clipit eval zero-shot --dataset synthetic --model runs/tiny --model runs/tiny2 --data sources/synthetic
    """
    from clipit.eval import zeroshot

    flags = {
        **_shared_flags(model, output, plot, batch_size, dtype),
        "eval.zero_shot.dataset": ("--dataset", dataset),
        "eval.zero_shot.data": ("--data", data),
        "eval.zero_shot.classnames": ("--classnames", classnames),
        "eval.zero_shot.templates": ("--templates", templates),
        "eval.zero_shot.labels": ("--labels", labels),
    }
    cfg = resolve(ctx, config, set_, flags).eval
    _report(cfg, zeroshot.run(_check_outputs(cfg)))


@app.command("retrieval")
@guarded
def retrieval(
    ctx: typer.Context,
    dataset: Annotated[str | None, typer.Option("--dataset", help="mscoco-it or synthetic.")] = None,
    model: ModelOpt = None,
    images: Annotated[
        Path | None, typer.Option("--images", help="Folder the caption file's file_names are in.")
    ] = None,
    annotations: Annotated[
        Path | None, typer.Option("--annotations", help="COCO-format caption JSON.")
    ] = None,
    output: OutputOpt = None,
    plot: PlotOpt = None,
    batch_size: BatchOpt = None,
    dtype: DtypeOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Text-to-image and image-to-text Recall@1/5/10 and MRR@1/5/10.

    Recall follows clip_benchmark (an image is found when any of its captions is in the top k); MRR@k
    is CLIP-Italian's (mean of 1/rank within k). Identical caption strings are one text whose positives
    are all the images that have it; ties count against the model. MSCOCO-IT's string image ids are
    matched to int ids.

    Examples:
      clipit eval retrieval --dataset mscoco-it --model runs/base --images val2014 \\
          --annotations captions_ita_devset_unvalidated.json --output coco.json
      clipit eval retrieval --dataset synthetic --model runs/tiny --images sources/synthetic/retrieval/images \\
          --annotations sources/synthetic/retrieval/captions.json
    """
    from clipit.eval import retrieval as retrieving

    flags = {
        **_shared_flags(model, output, plot, batch_size, dtype),
        "eval.retrieval.dataset": ("--dataset", dataset),
        "eval.retrieval.images": ("--images", images),
        "eval.retrieval.annotations": ("--annotations", annotations),
    }
    cfg = resolve(ctx, config, set_, flags).eval
    _report(cfg, retrieving.run(_check_outputs(cfg)))
