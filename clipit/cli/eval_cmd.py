"""`clipit eval zero-shot | retrieval`: metrics of one or several models, side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from clipit.cli.guard import guarded
from clipit.cli.options import ConfigOpt, SetOpt, load
from clipit.config.eval import EvalConfig
from clipit.errors import ConfigError

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


def _merge(cfg: EvalConfig, top: dict, section: str, section_flags: dict) -> EvalConfig:
    """Flags over the config's [eval] values (a flag left out keeps the config value)."""
    raw = cfg.model_dump()
    raw.update({k: v for k, v in top.items() if v})  # an empty --model list keeps eval.model
    raw[section].update({k: v for k, v in section_flags.items() if v is not None})
    try:
        return EvalConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        flag = str(first["loc"][-1]).replace("_", "-")  # the flag's name, whichever section holds it
        raise ConfigError(f"--{flag}: {first['msg']}", "see clipit eval --help") from None


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

    cfg = _merge(
        load(ctx, config, set_).eval,
        {"model": model, "output": output, "plot": plot, "batch_size": batch_size, "dtype": dtype},
        "zero_shot",
        {
            "dataset": dataset,
            "data": data,
            "classnames": classnames,
            "templates": templates,
            "labels": labels,
        },
    )
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

    cfg = _merge(
        load(ctx, config, set_).eval,
        {"model": model, "output": output, "plot": plot, "batch_size": batch_size, "dtype": dtype},
        "retrieval",
        {"dataset": dataset, "images": images, "annotations": annotations},
    )
    _report(cfg, retrieving.run(_check_outputs(cfg)))
