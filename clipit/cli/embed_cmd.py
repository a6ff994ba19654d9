"""`clipit embed`: embeddings of an image folder or a text file, as .npy on stdout or a folder of shards."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from clipit.cli.guard import guarded
from clipit.cli.options import ConfigOpt, SetOpt, resolve


@guarded
def embed(
    ctx: typer.Context,
    path: Annotated[
        Path | None,
        typer.Argument(help="Folder of images (recursive; rows in sorted path order).", show_default=False),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="clipit run folder, HF folder or hub id.")
    ] = None,
    text: Annotated[
        Path | None, typer.Option("--text", help="Embed this text file instead, one text per line.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write a resumable folder of float16 shards + metadata.")
    ] = None,
    paths_out: Annotated[
        Path | None, typer.Option("--paths-out", help="Write the rows' image paths here, one per line.")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", "-b", min=1, help="Items per forward pass.")
    ] = None,
    shard_size: Annotated[
        int | None, typer.Option("--shard-size", min=1, help="Rows per shard with --out.")
    ] = None,
    dtype: Annotated[str | None, typer.Option("--dtype", help="float32 (default) or bfloat16.")] = None,
    ann_threshold: Annotated[
        int | None,
        typer.Option(
            "--ann-threshold",
            min=0,
            help="With --out: build an ANN index from this many vectors (default 50000).",
        ),
    ] = None,
    distributor: Annotated[
        str | None,
        typer.Option(
            "--distributor",
            help="With --out: local (here) or ray: one Ray task per shard, on embed.ray_workers actors "
            "that each load the model, at embed.ray_address (config: embed.distributor).",
        ),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Embed images or texts: float32 .npy of shape (N, D) on stdout, rows L2-normalised.

    Unreadable images are skipped and named on stderr (none readable: exit 2); --paths-out lists the
    rows' paths, one per line. It refuses to write binary to a terminal: redirect stdout. With --out DIR
    it writes clip-retrieval's layout (img_emb/img_emb_0000.npy float16 + metadata/metadata_0000.parquet)
    and resumes by shard; a rerun after the folder changed re-embeds the shards whose files changed.
    From --ann-threshold vectors on (default 50000) it also builds an ANN index (usearch HNSW) in
    DIR/ann/ that clipit search uses; smaller folders are searched exactly.
    With --text FILE --out DIR the texts go to text_emb/text_emb_0000.npy + metadata (caption column).

    Examples:
      clipit embed photos/ --model runs/base > vecs.npy
      clipit embed photos/ --model clip-italian/clip-italian --paths-out rows.txt > vecs.npy
      clipit embed --text captions.txt --model runs/base > texts.npy
      clipit embed photos/ --model runs/base --out index/      # then: clipit search "un gatto" --index index/
      clipit embed photos/ --model runs/base --out index/ --distributor ray
    """
    from clipit import embed as embedding

    flags = {
        "embed.images": ("PATH", path),
        "embed.model": ("--model", model),
        "embed.text": ("--text", text),
        "embed.out": ("--out", out),
        "embed.paths_out": ("--paths-out", paths_out),
        "embed.batch_size": ("--batch-size", batch_size),
        "embed.shard_size": ("--shard-size", shard_size),
        "embed.dtype": ("--dtype", dtype),
        "embed.ann_threshold": ("--ann-threshold", ann_threshold),
        "embed.distributor": ("--distributor", distributor),
    }
    cfg = resolve(ctx, config, set_, flags)
    if text is not None and path is None:  # --text replaces a configured folder
        cfg = cfg.model_copy(update={"embed": cfg.embed.model_copy(update={"images": None})})
    section = cfg.embed
    summary = embedding.run(section, sys.stdout)
    if section.out is not None:
        from clipit.config import save_resolved

        save_resolved(cfg, section.out)
        typer.echo(summary["out"])
