"""ANN index (clipit.ann, usearch HNSW) against the exact scan `clipit search` runs below the threshold.

    .venv/bin/python benchmarks/ann.py                    # 100k vectors of dim 512
    .venv/bin/python benchmarks/ann.py --rows 1000000     # 1M (about 2 GB of float32 in memory)

The vectors are unit rows of dim 512 drawn around 1,000 random centres (clustered, as image embeddings
are: a photo's nearest neighbours are much closer than a random photo), stored as float16 like the
shards and searched as float32. Queries are fresh draws from the same clusters, not rows of the index.
Both sides go through `clipit.search.rank`, what a search runs: the scan (`Index` without a graph) and
the graph's candidates scored exactly (`Index` with the graph, opened memory-mapped from its file as
`load_index` opens it). Reported: build time, recall@10 (the share of the exact top 10 that the ANN
returns), and one-query-at-a-time latency p50/p99 and queries/s. Results go to docs/benchmarks.md
("## ANN index").
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def clustered(rows: int, dim: int, *, clusters: int, spread: float, seed: int) -> np.ndarray:
    """Unit rows around `clusters` random centres; `spread` is the noise's norm relative to a centre's."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    out = np.empty((rows, dim), dtype=np.float32)
    for start in range(0, rows, 100_000):  # in blocks: 1M rows of noise at once would double the memory
        n = min(100_000, rows - start)
        noise = rng.standard_normal((n, dim)).astype(np.float32) * spread
        out[start : start + n] = centres[rng.integers(0, clusters, n)] + noise
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def latencies(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, list[np.ndarray]]:
    from clipit.search import rank

    times, rows = [], []
    for query in queries:
        started = time.perf_counter()
        hits = rank(index, query, k)
        times.append(time.perf_counter() - started)
        rows.append([int(h.path.name) for h in hits])  # the benchmark's paths are the row numbers
    return np.array(times), rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--spread", type=float, default=0.5, help="noise norm / centre norm (larger: harder)")
    args = parser.parse_args()

    from clipit import ann
    from clipit.search import Index

    drawn = clustered(args.rows + args.queries, args.dim, clusters=1000, spread=args.spread, seed=0)
    vectors = drawn[: args.rows].astype(np.float16).astype(np.float32)  # what the shards hold
    queries = drawn[args.rows :]
    del drawn
    paths = [str(i) for i in range(args.rows)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "img_emb.usearch"
        started = time.perf_counter()
        params = ann.build(vectors, path)
        build_s = time.perf_counter() - started
        from usearch.index import Index as Graph

        graph = ann.Graph(Graph.restore(str(path), view=True), params["expansion_search"])
        exact = Index(vectors, paths, Path("."), "bench")
        approx = Index(vectors, paths, Path("."), "bench", graph)
        latencies(exact, queries[:5], args.k), latencies(approx, queries[:5], args.k)  # warm-up
        exact_t, exact_rows = latencies(exact, queries, args.k)
        ann_t, ann_rows = latencies(approx, queries, args.k)
    recall = np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(ann_rows, exact_rows, strict=True)])
    load = os.getloadavg()
    print(
        f"rows {args.rows}, dim {args.dim}, spread {args.spread}, queries {args.queries}, k {args.k}; load {load[0]:.1f}/{load[1]:.1f}"
    )
    print(
        f"params: connectivity {params['connectivity']}, expansion_add {params['expansion_add']}, "
        f"expansion_search {params['expansion_search']}"
    )
    print(f"build: {build_s:.1f} s; recall@{args.k} vs exact: {recall:.4f}")
    for name, t in (("exact scan", exact_t), ("ANN", ann_t)):
        print(
            f"{name}: p50 {np.percentile(t, 50) * 1e3:.2f} ms, p99 {np.percentile(t, 99) * 1e3:.2f} ms, "
            f"{len(t) / t.sum():.0f} queries/s"
        )
    print(f"speed-up (p50): {np.percentile(exact_t, 50) / np.percentile(ann_t, 50):.1f}x")


if __name__ == "__main__":
    main()
