"""The synthetic Italian dataset: shapes, colours, counts and relations, captioned in correct Italian.

`generate(cfg)` writes, under `cfg.out` (see docs/data.md for the exact layout):
- the training stream as a real img2dataset download (`00000.tar`, `00000.parquet`, `00000_stats.json`)
  plus `manifest.parquet`, so build-shards treats it exactly like CC3M; like MSCOCO-IT, each image has
  several captions (`captions_per_image` paraphrases, see `paraphrase`), one manifest row each, keyed
  `synthetic/<image>/<n>` and split by image;
- `tokenizer/`: a BERT WordPiece tokenizer covering every caption word;
- `zeroshot/`: one class-folder set per attribute (colour, shape, count, held-out composition, relation);
- `retrieval/`: images plus COCO-style `captions.json`.
Image i depends only on (seed, i): the same config gives the same bytes, and a rerun after a kill skips
the tar shards that were finished.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import multiprocessing
import os
import time
from pathlib import Path

import pyarrow.parquet as pq

from clipit import atomic, folder_lock, parent_watch
from clipit.config.data import ShardSettings, SyntheticSource
from clipit.console import progress
from clipit.data import manifest, manifest_stream, output_folder
from clipit.data.synthetic import evalsets, writer
from clipit.data.synthetic.tokenizer import write_tokenizer

SOURCE = "synthetic"
PARALLEL_FROM = 10_000  # below this, starting worker processes costs more than it saves
_CHUNK = 1_000  # images per task sent to a worker
# The manifest needs a split; build-shards recomputes it with its own [data.shards].val_fraction.
_VAL_FRACTION = ShardSettings.model_fields["val_fraction"].default

__all__ = ["SOURCE", "generate"]


@folder_lock.scoped
def generate(cfg: SyntheticSource, out: Path | None = None, val_fraction: float = _VAL_FRACTION) -> dict:
    """Write the whole synthetic dataset under `out` (default `cfg.out`); return a summary.

    `cfg.n` counts images; the manifest has up to `cfg.captions_per_image` rows per image.

    `val_fraction` only sets the manifest's `split` column (build-shards recomputes it with its own).
    """
    out = Path(out if out is not None else cfg.out)
    output_folder.check_ours(out, "--out (data.synthetic.out)")  # a rerun deletes files by name
    folder_lock.acquire(out, "download synthetic")  # creates the folder; before the clean-ups
    atomic.remove_stale_temporaries(out)  # files and the folders of a killed atomic_folder
    started = time.perf_counter()

    shard_count = -(-cfg.n // cfg.samples_per_shard)
    skipped = 0
    counts = dict.fromkeys(manifest.SPLITS, 0)  # caption rows per split: the manifest is never held whole
    with (
        progress() as bar,
        contextlib.ExitStack() as stack,
        manifest_stream.writer(out / manifest.MANIFEST_NAME) as written,
    ):
        task = bar.add_task("drawing synthetic images", total=cfg.n)
        pool = None
        if cfg.workers > 0 and cfg.n >= PARALLEL_FROM:
            # spawn, not fork: the parent may hold JAX or other threads that a fork would copy half-way
            context = multiprocessing.get_context("spawn")
            pool = stack.enter_context(
                concurrent.futures.ProcessPoolExecutor(
                    cfg.workers,
                    mp_context=context,
                    initializer=parent_watch.exit_with_parent,  # after a kill -9 of clipit, workers exit too
                    initargs=(os.getpid(),),
                )
            )
        for shard_id in range(shard_count):
            first = shard_id * cfg.samples_per_shard
            indices = range(first, min(cfg.n, first + cfg.samples_per_shard))
            samples = None
            if not _shard_finished(out, shard_id, cfg, indices):
                samples = _draw(pool, cfg, indices)
                writer.write_shard(out, shard_id, cfg.seed, samples, identity=_identity(cfg, indices))
            else:
                skipped += 1
            rows = _manifest_rows(out, shard_id, cfg, samples, val_fraction)
            written.write_rows(rows)
            for row in rows:
                counts[row["split"]] += 1
            del samples, rows
            bar.advance(task, len(indices))
    _remove_shards_beyond(out, shard_count)

    with atomic.atomic_folder(out / "tokenizer") as folder:
        tokenizer = write_tokenizer(folder)
    with atomic.atomic_folder(out / "zeroshot") as folder:
        zeroshot = evalsets.write_zeroshot(folder, cfg.seed, cfg.image_size, cfg.zeroshot_per_class)
    with atomic.atomic_folder(out / "retrieval") as folder:
        retrieval = evalsets.write_retrieval(folder, cfg.seed, cfg.image_size, cfg.retrieval_images)

    return {
        "out": str(out),
        "images": cfg.n,
        "captions": sum(counts.values()),
        "shards": shard_count,
        "shards_reused": skipped,
        **counts,
        "vocabulary": len(tokenizer.get_vocab()),
        "zeroshot": zeroshot,
        "retrieval": retrieval,
        "seconds": round(time.perf_counter() - started, 2),
    }


def _draw(
    pool: concurrent.futures.Executor | None, cfg: SyntheticSource, indices: range
) -> list[writer.Sample]:
    """The samples of `indices`, in order; drawn in chunks by the worker processes when there are some."""
    if pool is None:
        return writer.draw_range(
            cfg.seed, indices.start, indices.stop, cfg.image_size, cfg.captions_per_image
        )
    starts = range(indices.start, indices.stop, _CHUNK)
    stops = [min(start + _CHUNK, indices.stop) for start in starts]
    repeat = len(starts)
    parts = pool.map(
        writer.draw_range,
        [cfg.seed] * repeat,
        starts,
        stops,
        [cfg.image_size] * repeat,
        [cfg.captions_per_image] * repeat,
    )
    return [sample for part in parts for sample in part]


def _remove_shards_beyond(out: Path, shard_count: int) -> None:
    """Shards of an earlier, larger run in the same folder are not in the manifest: delete them."""
    for path in out.iterdir():
        stem = path.name.split(".")[0].removesuffix("_stats")
        if stem.isdigit() and len(stem) == 5 and int(stem) >= shard_count and path.is_file():
            if path.name in (f"{stem}.tar", f"{stem}.parquet", f"{stem}_stats.json"):
                path.unlink()


def _identity(cfg: SyntheticSource, indices: range) -> dict:
    """What a finished shard must have been made from to be reused."""
    return {
        "seed": cfg.seed,
        "image_size": cfg.image_size,
        "captions_per_image": cfg.captions_per_image,
        "first": indices.start,
        "count": len(indices),
    }


def _shard_finished(out: Path, shard_id: int, cfg: SyntheticSource, indices: range) -> bool:
    """The stats file is written last, so a matching one means the tar and parquet are complete."""
    stem = out / f"{shard_id:05d}"
    try:
        stats = json.loads(Path(f"{stem}_stats.json").read_text())
    except (OSError, ValueError):
        return False
    tar_ok = Path(f"{stem}.tar").is_file() and Path(f"{stem}.parquet").is_file()
    return tar_ok and stats.get("clipit_synthetic") == _identity(cfg, indices)


def _manifest_rows(
    out: Path, shard_id: int, cfg: SyntheticSource, samples: list | None, val_fraction: float
) -> list[dict]:
    """Manifest rows of one shard, one per image-caption pair: from the fresh samples, or read back from
    a reused shard's parquet. Every caption of an image gets the image's split (a hash of its key)."""
    if samples is None:
        records = pq.read_table(out / f"{shard_id:05d}.parquet").to_pylist()
        entries = [
            (int(r["key"]), json.loads(r["captions"]), r["sha256"], json.loads(r["labels"])) for r in records
        ]
    else:
        entries = [(s.index, s.captions, s.sha256, s.labels) for s in samples]
    rows = []
    for index, captions, sha, labels in entries:
        image_key = f"{SOURCE}/{index}"
        split = manifest.split_for_key(image_key, val_fraction)
        for number, (caption, caption_en) in enumerate(captions):
            rows.append(
                {
                    "key": f"{image_key}/{number}",
                    "source": SOURCE,
                    "url": writer.url_of(cfg.seed, index),
                    "caption": caption,
                    "caption_en": caption_en,
                    "lang": "it",
                    "status": manifest.STATUS_OK,
                    "split": split,
                    "shard": f"{shard_id:05d}.tar",
                    "index": index,
                    "width": cfg.image_size,
                    "height": cfg.image_size,
                    "image_sha256": sha,
                    "meta": labels,
                }
            )
    return rows
