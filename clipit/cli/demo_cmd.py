"""`clipit demo [--out DIR]`: the whole lifecycle offline on the synthetic dataset."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from clipit.cli.guard import guarded
from clipit.cli.options import ConfigOpt, SetOpt, config_source
from clipit.console import info


@guarded
def demo(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for everything the demo makes.")] = Path(
        "demo-out"
    ),
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Download the synthetic Italian dataset, build shards, train configs/tiny.toml in two phases,
    evaluate zero-shot and retrieval, embed and search; print a results table and write a report.

    Runs offline in about 10 minutes on 2 CPU cores.

    Examples:
      clipit demo
      clipit demo --out /tmp/demo --set data.synthetic.n=2000 --set train.phases.1.steps=100
    """
    from clipit.demo import demo_config, run_demo
    from clipit.demo.report import results_table

    cfg = demo_config(*config_source(ctx, config, set_), out)  # --out is the demo's folder, not a key
    summary = run_demo(cfg, out)
    typer.echo(results_table(summary))
    info(f"browse the demo's images: clipit serve --index {shlex.quote(summary['index'])}")
