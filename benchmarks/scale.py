"""Scale curves: wall seconds and peak memory of each stage, run as a whole process, by manifest rows.

    .venv/bin/python benchmarks/scale.py                                    # 10k and 100k rows, every stage
    .venv/bin/python benchmarks/scale.py --sizes 40000,320000 --stages build
    .venv/bin/python benchmarks/scale.py --sizes 3300000 --stages build --big-source

Each stage is one subprocess (`clipit ...`, or `python -c` for the loader, which has no command of its
own). Memory: `peak` is the process's own peak RSS (VmHWM), `tree` the largest sum of RSS over the
process and its children (build-shards' and download's worker processes), polled every 50 ms.
Stages, at SIZE caption rows:
- download: `clipit download synthetic` (3 captions an image: about SIZE/3 images)
- build: `clipit build-shards` of that download (2 worker processes)
- translate: `clipit translate --backend libre` of the download's manifest with its Italian captions
  removed, from a warm cache (a loopback LibreTranslate-compatible server answers a first, unmeasured
  run; the measured run sends no request)
- loader: one ordered pass over the train shards with the eval transform, in one process (clipit.data.loader)
- embed: `clipit embed --out` of the download's images as files, with a tiny random HF model
- search: `clipit search` over that folder (ANN index from 50,000 vectors)
- download-cc3m: `clipit download cc3m` of a CC3M-shaped TSV of SIZE lines over 6 shared image URLs of a
  loopback image server (tests/support/cc3m_tsv.py): img2dataset fetches 6 images, the manifest has every
  line, so the curve is that of reading the TSV and writing the manifest
`--big-source`: build-shards only, on a generated manifest of SIZE rows whose images are a few shared
tar members (tests/support/big_source.py; half the images failed): the plan and the manifests at full
size, on a small disk. Writes a JSON (--json) and a log-log plot (--plot).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from anywhere in the repo

from clipit.data import manifest, manifest_stream  # noqa: E402
from tests.support.big_source import write_big_source  # noqa: E402
from tests.support.cc3m_tsv import write_shared_url_tsv  # noqa: E402
from tests.support.image_server import ImageServer, fast_download_args  # noqa: E402
from tests.support.libre_server import LibreServer  # noqa: E402

CLIPIT = [str(Path(sys.executable).parent / "clipit")]  # the venv's entry point
STAGES = ("download", "build", "translate", "loader", "embed", "search", "download-cc3m")
LOADER = """
import sys
from clipit.config.data import LoaderSettings
from clipit.data.loader import make_loader
loader = make_loader(sys.argv[1], "train", global_batch_size=256, tokenizer=sys.argv[2], max_text_length=32,
                     image_size=64, settings=LoaderSettings(workers=0), train=False)
rows = 0
with loader:
    for batch in loader:
        rows += len(batch["pixel_values"])
print(rows)
"""


def measure(command: list[str], log: Path) -> dict:
    """Run one command; its wall seconds, its own peak RSS and the peak RSS summed over its process tree.

    Its own peak is the kernel's high-water mark of its memory (VmHWM), read until it exits: wait4's
    ru_maxrss would also count this script's memory, which a forked child starts from.
    """
    started = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        peaks = {"own": 0, "tree": 0}
        done = threading.Event()

        def poll() -> None:
            parent = psutil.Process(process.pid)
            while not done.is_set():
                try:
                    status = Path(f"/proc/{process.pid}/status").read_text()
                    hwm = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
                    peaks["own"] = max(peaks["own"], int(hwm.split()[1]) * 1024)
                    total = parent.memory_info().rss + sum(
                        c.memory_info().rss for c in parent.children(recursive=True)
                    )
                    peaks["tree"] = max(peaks["tree"], total)
                except (psutil.Error, OSError, StopIteration):
                    pass
                done.wait(0.05)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        process.wait()  # the poller reads /proc/PID until the process is reaped
        done.set()
        poller.join()
    seconds = time.perf_counter() - started
    if process.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}); see {log}")
    return {"seconds": round(seconds, 2), "peak_mb": peaks["own"] >> 20, "tree_mb": peaks["tree"] >> 20}


def english_only(source: Path, target: Path) -> None:
    """The manifest with its Italian captions removed: every row is one for translate to fill."""
    with manifest_stream.writer(target) as out:
        for table in manifest_stream.iter_batches(source):
            nulls = [None] * table.num_rows
            table = table.set_column(table.schema.get_field_index("caption"), "caption", [nulls])
            out.write(table.set_column(table.schema.get_field_index("lang"), "lang", [nulls]))


def image_files(source: Path, folder: Path) -> None:
    """The download's images as files (what `clipit embed PATH` reads)."""
    folder.mkdir(parents=True, exist_ok=True)
    for tar_path in sorted(source.glob("*.tar")):
        with tarfile.open(tar_path) as tar:
            for member in tar:
                if member.name.endswith(".jpg"):
                    (folder / member.name).write_bytes(tar.extractfile(member).read())


def download_cc3m(size: int, work: Path) -> dict:
    """`clipit download cc3m` of SIZE lines over a few shared URLs of a loopback image server."""
    server = ImageServer().start()
    try:
        tsv = write_shared_url_tsv(work / f"gcc-{size}.tsv", size, server.base_url)
        command = [*CLIPIT, "download", "cc3m", "--tsv", str(tsv), "--out", str(work / f"cc3m-{size}"),
                   *fast_download_args(samples_per_shard=1000)]  # fmt: skip
        return {**measure(command, work / f"download-cc3m-{size}.log"), "rows": size}
    finally:
        server.stop()


def run_size(size: int, stages: list[str], work: Path, big: bool) -> dict[str, dict]:
    results: dict[str, dict] = {}
    work.mkdir(parents=True, exist_ok=True)
    if "download-cc3m" in stages:
        results["download-cc3m"] = download_cc3m(size, work)
        stages = [s for s in stages if s != "download-cc3m"]
        if not stages:
            return results
    source, shards = work / f"synthetic-{size}", work / f"shards-{size}"
    if big:
        write_big_source(source, size, failed=0.5)
        results["build"] = measure(
            [*CLIPIT, "build-shards", "--out", str(shards), str(source)], work / f"build-{size}.log"
        )
        results["build"]["rows"] = size
        return results
    images = -(-size // 3)
    step = measure(
        [*CLIPIT, "download", "synthetic", "--out", str(source), "--n", str(images)],
        work / f"download-{size}.log",
    )
    rows = manifest_stream.open_file(source).metadata.num_rows
    if "download" in stages:
        results["download"] = step
    if {"build", "loader"} & set(stages):
        results["build"] = measure(
            [*CLIPIT, "build-shards", "--out", str(shards), str(source)], work / f"build-{size}.log"
        )
    if "translate" in stages:
        english = work / f"english-{size}.parquet"
        english_only(source / manifest.MANIFEST_NAME, english)
        with LibreServer() as server:
            command = [*CLIPIT, "translate", "--input", str(english), "--to", "it", "--backend", "libre",
                       "--endpoint", server.url, "--set", f"translate.cache={work / 'cache.sqlite'}",
                       "--set", "translate.requests_per_second=1000000"]  # fmt: skip
            measure([*command, "--output", str(work / f"warm-{size}.parquet")], work / f"warm-{size}.log")
            before = server.requests
            results["translate"] = measure(
                [*command, "--output", str(work / f"it-{size}.parquet")], work / f"translate-{size}.log"
            )
            assert server.requests == before, "the measured run must come from the cache"
    if "loader" in stages:
        results["loader"] = measure(
            [sys.executable, "-c", LOADER, str(shards), str(source / "tokenizer")],
            work / f"loader-{size}.log",
        )
    if {"embed", "search"} & set(stages):
        model = work / "model"
        if not model.exists():
            from tests.support.tiny_hf import save_tiny_dual_encoder

            save_tiny_dual_encoder(model)
        files, index = work / f"images-{size}", work / f"index-{size}"
        image_files(source, files)
        results["embed"] = measure(
            [*CLIPIT, "embed", str(files), "--model", str(model), "--out", str(index)],
            work / f"embed-{size}.log",
        )
    if "search" in stages:
        results["search"] = measure(
            [*CLIPIT, "search", "un cerchio rosso", "--index", str(index), "--model", str(model)],
            work / f"search-{size}.log",
        )
    for result in results.values():
        result.setdefault("rows", rows)
    return results


def plot(results: dict[str, dict[str, dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    stages = sorted({stage for by_stage in results.values() for stage in by_stage}, key=_stage_order)
    for stage in stages:
        for big in (False, True):  # the generated source is its own curve
            points = sorted(
                (r[stage]["rows"], r[stage])
                for name, r in results.items()
                if stage in r and name.startswith("big-") == big
            )
            if not points:
                continue
            rows, label = [p[0] for p in points], f"{stage} (generated source)" if big else stage
            left.plot(rows, [p[1]["seconds"] for p in points], "o--" if big else "o-", label=label)
            right.plot(rows, [p[1]["peak_mb"] for p in points], "o--" if big else "o-", label=label)
    for axis, label in ((left, "wall seconds"), (right, "peak RSS of the clipit process (MB)")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("manifest rows")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def _stage_order(stage: str) -> int:
    return STAGES.index(stage) if stage in STAGES else len(STAGES)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000", help="caption rows, comma-separated")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"any of {','.join(STAGES)}")
    parser.add_argument("--big-source", action="store_true", help="build-shards on a generated manifest")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument(
        "--json", type=Path, default=REPO / "benchmarks" / "scale.json", help="results (merged into)"
    )
    parser.add_argument("--plot", type=Path, default=REPO / "docs" / "img" / "scale.png")
    args = parser.parse_args()
    stages = [s for s in args.stages.split(",") if s]
    unknown = set(stages) - set(STAGES)
    if unknown:
        parser.error(f"unknown stages {sorted(unknown)}")
    results = json.loads(args.json.read_text()) if args.json.is_file() else {}
    with tempfile.TemporaryDirectory(dir=args.work) as scratch:
        for size in (int(s) for s in args.sizes.split(",")):
            name = f"{'big-' if args.big_source else ''}{size}"
            results.setdefault(name, {}).update(run_size(size, stages, Path(scratch) / name, args.big_source))
            args.json.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
            for stage, r in results[name].items():
                print(f"{name:>12} {stage:<10} {r['rows']:>9} rows {r['seconds']:>9.1f} s "
                      f"{r['peak_mb']:>6} MB own {r['tree_mb']:>6} MB tree", flush=True)  # fmt: skip
    plot(results, args.plot)


if __name__ == "__main__":
    main()
