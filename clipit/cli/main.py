"""The root `clipit` app: global options and command wiring, nothing else."""

from __future__ import annotations

import typer

from clipit import __version__
from clipit.cli import (
    build_shards_cmd,
    config_cmd,
    demo_cmd,
    download_cmd,
    embed_cmd,
    eval_cmd,
    export_cmd,
    init_cmd,
    search_cmd,
    serve_cmd,
    train_cmd,
    translate_cmd,
)
from clipit.cli.options import ConfigOpt, SetOpt

app = typer.Typer(
    name="clipit",
    help="Give CLIP to a language that has none: download, translate, shard, train, evaluate, embed.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"clipit {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """clipit: train and use CLIP models for a new language (Italian first).

    Every command reads ./clipit.toml when present; `clipit init` writes one.
    """
    ctx.obj = {"config": config, "set": list(set_ or [])}


app.add_typer(config_cmd.app, name="config")
app.add_typer(download_cmd.app, name="download")
app.command("build-shards")(build_shards_cmd.build_shards)
app.command("init")(init_cmd.init)
app.command("translate")(translate_cmd.translate)
app.command("train")(train_cmd.train)
app.command("export")(export_cmd.export)
app.add_typer(eval_cmd.app, name="eval")
app.command("embed")(embed_cmd.embed)
app.command("search")(search_cmd.search)
app.command("serve")(serve_cmd.serve)
app.command("demo")(demo_cmd.demo)


def main() -> None:
    app(prog_name="clipit")


if __name__ == "__main__":
    main()
