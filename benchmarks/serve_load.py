"""`clipit serve` under load: text searches from concurrent clients, ANN index against the exact scan.

    .venv/bin/python benchmarks/serve_load.py                 # 100k vectors, 200 queries, 8 at a time
    .venv/bin/python benchmarks/serve_load.py --vectors 20000 --queries 100 --concurrency 4
    .venv/bin/python benchmarks/serve_load.py --dim 512                       # CLIP's width (build: minutes)

Measured: per-request latency p50/p99 and queries/s of `GET /api/search?q=TEXT&k=10` against the real
`clipit serve` process (uvicorn, the batcher, the model, ranking, JSON), from a thread pool of
`--concurrency` clients that keep that many requests in flight until `--queries` are answered. The
queries are varied Italian phrases; each pass is preceded by an unmeasured warm-up (bursts with 1, 2,
4, ... in flight, then the whole pass), so XLA compilation of the text tower's shapes is not counted. After
each pass one hit's `url` is fetched, to check that the served index is whole.

The index folder is written directly through clipit's own writers (`embed_index.check_or_write_record`,
the shard layout, `ann.update`), since embedding 100k real images takes hours on a CPU: unit vectors drawn
around 1,000 random centres (clustered, like image embeddings), stored as float16 shards, their metadata
pointing at a few real small images (so every hit's `url` can be served). The model is a tiny random
VisionTextDualEncoder saved by transformers (tests/support/tiny_hf.py), whose projection dimension
(16, or `--dim`: 512 is CLIP ViT-B/32's) sets the vectors' dimension. The same folder is served twice:
first below the ANN threshold (no graph: every query scans all vectors), then with the usearch HNSW
graph that `clipit embed` builds from `embed.ann_threshold` rows on. The server listens on 127.0.0.1
only, on a free port, and is stopped after each pass; every loop is bounded in count and in time.
Results go to docs/benchmarks.md ("## Serve: load").
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.support, run from any folder

SHARD_SIZE = 25_000
START_TIMEOUT_S = 300  # model load + index load + warm-up compile, on a loaded machine
REQUEST_TIMEOUT_S = 60
PASS_TIMEOUT_S = 600  # a pass that takes longer is reported as failed rather than left running

SUBJECTS = (
    "un gatto|due cani|una donna|un uomo|un bambino|una bambina|tre persone|un albero|una pizza|un'auto"
)
COLOURS = "rosso|verde|blu|giallo|nero|bianco|grigio|azzurro|marrone|arancione"
PLACES = (
    "sulla spiaggia|in montagna|vicino al fiume|sulla strada|davanti a una casa|sotto il cielo blu|"
    "accanto al tavolo|in riva al mare|nel parco con gli alberi|in una piccola stanza bianca"
)


def queries(count: int) -> list[str]:
    """`count` distinct Italian phrases of 3 to 12 words (subject, colour, place, sometimes an action)."""
    subjects, colours, places = SUBJECTS.split("|"), COLOURS.split("|"), PLACES.split("|")
    out = []
    for i in range(count):
        text = f"{subjects[i % 10]} {colours[(i // 10) % 10]} {places[(i // 100 + i) % 10]}"
        out.append(text + (" che corre e gioca" if i % 3 == 0 else ""))
    return out


def clustered(rows: int, dim: int, *, clusters: int = 1000, spread: float = 0.5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    out = centres[rng.integers(0, clusters, rows)] + spread * rng.standard_normal((rows, dim)).astype(
        np.float32
    )
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def write_index(folder: Path, model: Path, photos: list[Path], root: Path, rows: int, dim: int) -> None:
    """An embedded folder of `rows` clustered vectors in clipit's layout (no ANN graph yet)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from clipit import atomic, embed_index

    record = {
        "format_version": embed_index.FORMAT_VERSION,
        "model": str(model),
        "dtype": "float32",
        "root": str(root),
        "files": rows,
        "shard_size": SHARD_SIZE,
        "dim": dim,
    }
    folder.mkdir(parents=True)
    embed_index.check_or_write_record(folder, record)
    (folder / "img_emb").mkdir()
    (folder / "metadata").mkdir()
    vectors = clustered(rows, dim).astype(np.float16)
    names = [photos[i % len(photos)].relative_to(root).as_posix() for i in range(rows)]
    for shard, start in enumerate(range(0, rows, SHARD_SIZE)):
        with atomic.atomic_path(embed_index.vectors_file(folder, shard)) as tmp, open(tmp, "wb") as f:
            np.save(f, vectors[start : start + SHARD_SIZE], allow_pickle=False)
        table = pa.table({"image_path": pa.array(names[start : start + SHARD_SIZE], pa.string())})
        digest = f"serve-load benchmark shard {shard}".encode()  # what the ANN fingerprint records
        table = table.replace_schema_metadata({embed_index.DIGEST_KEY: digest})
        with atomic.atomic_path(embed_index.metadata_file(folder, shard)) as tmp:
            pq.write_table(table, tmp)


def set_ann(folder: Path, threshold: int) -> float:
    """Build (or remove) the folder's ANN graph as `clipit embed` does; returns the seconds it took."""
    from clipit import ann, atomic, embed_index

    vectors, _, record = embed_index.read(folder)
    started = time.perf_counter()
    updated = ann.update(folder, record, threshold, rows=len(vectors), load_vectors=lambda: vectors)
    atomic.write_text(folder / embed_index.RECORD, json.dumps(updated, indent=2) + "\n")
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT_S) as response:
        return json.loads(response.read())


def start_server(index: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-c", "from clipit.cli.main import main; main()"]
    command += ["serve", "--index", str(index), "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=index.parent)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"clipit serve exited with {server.returncode}:\n{log.read_text()[-2000:]}")
        try:
            get(base + "/api/health")
            return server, base
        except OSError:
            time.sleep(0.25)
    stop(server)
    raise RuntimeError(f"clipit serve did not answer /api/health in {START_TIMEOUT_S}s")


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def load(base: str, texts: list[str], concurrency: int, k: int) -> tuple[np.ndarray, float]:
    """Latencies (s) of one search per text, `concurrency` in flight, and the pass's wall time."""
    deadline = time.monotonic() + PASS_TIMEOUT_S

    def one(text: str) -> float:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the pass ran past {PASS_TIMEOUT_S}s")
        started = time.perf_counter()
        found = get(f"{base}/api/search?{urllib.parse.urlencode({'q': text, 'k': k})}")
        elapsed = time.perf_counter() - started
        if len(found["results"]) != k:
            raise RuntimeError(f"{text!r}: {len(found['results'])} results, expected {k}")
        return elapsed

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        times = list(pool.map(one, texts))
    return np.array(times), time.perf_counter() - started


def measure(index: Path, texts: list[str], args, log: Path) -> dict:
    server, base = start_server(index, log)
    try:
        # Warm-up, unmeasured: batches of every power-of-two size up to the concurrency (the batcher pads
        # to those), then the whole pass, so that XLA compiles each text shape before the clock starts.
        width = 1
        while width < args.concurrency:
            load(base, texts[: 4 * width], width, args.k)
            width *= 2
        load(base, texts, args.concurrency, args.k)
        times, wall = load(base, texts, args.concurrency, args.k)
        health = get(base + "/api/health")
        hit = get(f"{base}/api/search?{urllib.parse.urlencode({'q': texts[0], 'k': 1})}")["results"][0]
        with urllib.request.urlopen(base + hit["url"], timeout=REQUEST_TIMEOUT_S) as response:
            if response.status != 200 or not response.read():
                raise RuntimeError(f"{hit['url']}: HTTP {response.status} or empty")
    finally:
        stop(server)
    return {
        "p50_ms": 1000 * float(np.percentile(times, 50)),
        "p99_ms": 1000 * float(np.percentile(times, 99)),
        "qps": len(times) / wall,
        "batch": health["encoded_items"] / max(health["encoder_calls"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=100_000, help="rows in the served index")
    parser.add_argument("--queries", type=int, default=200, help="measured searches per pass")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--dim", type=int, default=None, help="projection dim (default: the tiny model's 16)")
    args = parser.parse_args()

    from tests.support import tiny_hf
    from tests.support.images import write_images

    if args.dim:  # the tiny checkpoint reads its projection size from this module constant when saved
        tiny_hf.PROJECTION_DIM = args.dim

    texts = queries(args.queries)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = tiny_hf.save_tiny_dual_encoder(work / "model", seed=4)
        photos = write_images(work / "photos", [(40, 30), (32, 32), (50, 80), (64, 64), (33, 47), (90, 41)])
        from clipit.encode import open_model

        dim = open_model(str(model)).dim
        write_index(work / "index", model, photos, work / "photos", args.vectors, dim)
        set_ann(work / "index", args.vectors + 1)  # below the threshold: exact scan
        exact = measure(work / "index", texts, args, work / "serve-exact.log")
        build_s = set_ann(work / "index", 0)
        assert (work / "index" / "ann" / "img_emb.usearch").is_file()
        approx = measure(work / "index", texts, args, work / "serve-ann.log")

    load_avg = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"{args.vectors} vectors of dim {dim}, {args.queries} queries, {args.concurrency} in flight, "
        f"k={args.k}; ANN build {build_s:.1f}s; load average after: {load_avg}"
    )
    print("| index | p50 ms | p99 ms | queries/s | texts per forward pass (warm-up included) |")
    print("|---|---|---|---|---|")
    for name, r in (("exact scan", exact), ("ANN (usearch HNSW)", approx)):
        print(f"| {name} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['qps']:.1f} | {r['batch']:.2f} |")
    print(
        f"ANN vs exact: p50 {exact['p50_ms'] / approx['p50_ms']:.2f}x lower, "
        f"queries/s {approx['qps'] / exact['qps']:.2f}x"
    )


if __name__ == "__main__":
    main()
