"""Loader throughput with the train transform, per worker process, against JPEG decode alone.

    .venv/bin/python benchmarks/loader.py                      # builds 2,000 synthetic 256-px shards
    .venv/bin/python benchmarks/loader.py --shards shards/     # measures a shards folder (built if missing)
    .venv/bin/python benchmarks/loader.py --workers 0,1,2 --batch 64 --image-size 224

The reference is simplejpeg decoding the same shard images in one process (nothing else: the limit
of one core). The loader does the whole job per sample: Parquet read, decode, random resized crop,
flip, tokenise, batch, hand-over of uint8 pixels from the worker process (the CLIP normalisation runs
later, on the device, inside the jitted step: not part of the loader's work). Target: per worker
process at least 50% of the decode-only rate. Prints one line per setting and the ratio; results go to
docs/benchmarks.md ("## Loader") by hand, with the machine and its load.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import simplejpeg
from PIL import Image, ImageDraw

from clipit.config.data import LoaderSettings
from clipit.data import shard_format
from clipit.data.loader import make_loader
from clipit.data.text import load_tokenizer

WORDS = "un una due tre gatto cane cerchio stella rosso blu verde a sinistra destra su sfondo nero foto di".split()


def photo_like(rng: np.random.Generator, width: int, height: int = 256) -> np.ndarray:
    """Gradient, shapes and noise: JPEG sizes (~20-30 kB at q90) and decode costs of real photos."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [np.sin(x / rng.uniform(8, 40) + c) * np.cos(y / rng.uniform(8, 40)) for c in range(3)], -1
    )
    image = Image.fromarray(((base * 0.5 + 0.5) * 200 + 20).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = rng.integers(0, width - 20), rng.integers(0, height - 20)
        box = (int(x0), int(y0), int(x0 + rng.integers(10, 120)), int(y0 + rng.integers(10, 120)))
        draw.ellipse(box, fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    noisy = np.asarray(image).astype(np.int16) + rng.integers(-12, 13, (height, width, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def build_shards(folder: Path, count: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    rows = []
    for n in range(count):
        image = photo_like(rng, int(rng.integers(256, 385)))
        data = simplejpeg.encode_jpeg(image, quality=90)
        caption = " ".join(rng.choice(WORDS, size=int(rng.integers(4, 12))))
        rows.append(
            dict(key=f"bench/{n}", source="bench", caption=caption, caption_en=None, image=data,
                 width=image.shape[1], height=256, image_sha256=hashlib.sha256(data).hexdigest(), meta="{}")
        )  # fmt: skip
    table = pa.Table.from_pylist(rows, schema=shard_format.SHARD_SCHEMA)
    per_shard = 1000
    for number, start in enumerate(range(0, count, per_shard)):
        shard_format.write_shard(
            table.slice(start, per_shard), folder / shard_format.shard_name("train", number)
        )


def decode_only_rate(images: list[bytes], seconds: float) -> float:
    """simplejpeg on the shard images, already in memory: images per second in this one process."""
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        simplejpeg.decode_jpeg(images[done % len(images)], colorspace="RGB")
        done += 1
    return done / (time.perf_counter() - started)


def loader_rate(loader, seconds: float, unmeasured: int) -> float:
    """Images per second in steady state (`unmeasured` batches first: what sat in the prefetch buffers)."""
    for _ in range(unmeasured):
        next(loader)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        done += len(next(loader)["valid"])
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shards", type=Path, help="a shards folder (built there when missing; default: a temporary one)"
    )
    parser.add_argument("--n", type=int, default=2000, help="synthetic images to build")
    parser.add_argument("--workers", default="0,1,2", help="comma-separated worker counts")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per setting and round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (the median is reported)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        folder = args.shards or scratch / "shards"
        if not folder.exists():
            started = time.perf_counter()
            build_shards(folder, args.n)
            print(f"built {args.n} synthetic 256-px JPEGs in {time.perf_counter() - started:.1f} s")
        from transformers import BertTokenizer

        vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}
        BertTokenizer(vocab=vocab, do_lower_case=True).save_pretrained(scratch / "tokenizer")
        tokenizer = load_tokenizer(scratch / "tokenizer")

        images = [
            image
            for path in shard_format.list_shards(folder, "train")
            for image in shard_format.open_shard(path).read(columns=["image"]).column("image").to_pylist()
        ]
        worker_counts = [int(w) for w in args.workers.split(",")]
        print(f"cpus: {os.cpu_count()}  load average: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
        # Rounds alternate between the settings so that a change of machine load hits all of them. One
        # loader exists at a time (and none while decoding): idle pipelines still wake threads here.
        decode, rates = [], {w: [] for w in worker_counts}
        for _ in range(args.rounds):
            decode.append(decode_only_rate(images, args.seconds))
            for workers in worker_counts:
                with make_loader(
                    folder, "train", global_batch_size=args.batch, tokenizer=tokenizer, max_text_length=32,
                    image_size=args.image_size, settings=LoaderSettings(workers=workers, prefetch=2), seed=0,
                ) as loader:  # fmt: skip
                    rates[workers].append(loader_rate(loader, args.seconds, unmeasured=2 * (2 * workers + 2)))
        reference = statistics.median(decode)
        print(f"decode only (simplejpeg, 1 process): {reference:7.0f} img/s  (rounds: {_fmt(decode)})")
        for workers, values in rates.items():
            per_process = [v / max(1, workers) for v in values]
            # The ratio is taken per round (decode and loader measured a few seconds apart), then the median.
            ratio = statistics.median(p / d for p, d in zip(per_process, decode, strict=True))
            label = "in-process (1 thread)" if workers == 0 else f"{workers} worker process(es)"
            print(
                f"loader, train transform, {label:22s}: {statistics.median(values):7.0f} img/s,"
                f" {statistics.median(per_process):7.0f} per process = {ratio:4.0%} of decode-only"
                f"  (rounds: {_fmt(values)})"
            )
        print(f"load average at the end: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")


def _fmt(values: list[float]) -> str:
    return " ".join(f"{v:.0f}" for v in values)


if __name__ == "__main__":
    main()
