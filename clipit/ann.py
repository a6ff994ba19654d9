"""Approximate nearest-neighbour (ANN) index of an embedded folder's image vectors.

Exact search is a scan of every vector: at a few hundred thousand rows a query costs tens of
milliseconds and grows with the collection. Past `embed.ann_threshold` rows, `clipit embed --out DIR`
also writes an HNSW graph (usearch) of the vectors to DIR/ann/img_emb.usearch and records its parameters
under "ann" in DIR/embed.json; search then walks the graph for candidates and scores them exactly
against the stored vectors. Below the threshold nothing is built and search stays exact.

usearch rather than faiss: one small wheel with no BLAS or OpenMP runtime to clash with JAX, an HNSW
graph needs no training pass (so a rerun that re-embeds a shard just rebuilds it), it stores float16
like the shards, and the saved file is memory-mapped for search. The clip-retrieval layout beside it
is untouched, so autofaiss can still build its own faiss index from DIR/img_emb.

The record stores a fingerprint of the shards the graph was built from (each one's digest of the image
files it embedded, its rows, its vector file's size). A graph whose fingerprint no longer matches,
because shards were re-embedded, added or removed, is stale: `clipit embed` rebuilds it, and search
ignores it (with a warning) and scans.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from clipit import atomic
from clipit.console import info, warn

INDEX_FILE = "ann/img_emb.usearch"
# Each metadata parquet's schema metadata key for the digest of the files its shard embedded (written
# by clipit.embed_index); the index's fingerprint is made of these digests.
DIGEST_KEY = b"clipit.files_sha256"
DEFAULT_THRESHOLD = 50_000
# HNSW parameters: 16 links per node and a 128-wide beam while building give recall@10 >= 0.95 on
# clustered CLIP-like vectors (tests/test_ann.py, benchmarks/ann.py); the search beam widens with k.
CONNECTIVITY = 16
EXPANSION_ADD = 128
EXPANSION_SEARCH = 256


def fingerprint(folder: Path) -> str:
    """What an index built from the finished shards must still match: each shard's digest of the files it
    embedded (what a re-embed changes), its row count and its vector file's size. No modification times,
    so a copied folder keeps its index."""
    folder = Path(folder)
    entries = []
    for metadata in sorted((folder / "metadata").glob("metadata_*.parquet")):
        vectors = folder / "img_emb" / f"img_emb_{metadata.stem.split('_')[-1]}.npy"
        parquet = pq.read_metadata(metadata)
        digest = (parquet.schema.to_arrow_schema().metadata or {}).get(DIGEST_KEY, b"").decode()
        entries.append(
            [metadata.name, digest, parquet.num_rows, vectors.stat().st_size if vectors.is_file() else -1]
        )
    return hashlib.sha256(json.dumps(entries).encode("utf-8")).hexdigest()


def build(
    vectors: np.ndarray,
    path: Path,
    *,
    connectivity: int = CONNECTIVITY,
    expansion_add: int = EXPANSION_ADD,
    expansion_search: int = EXPANSION_SEARCH,
) -> dict:
    """Write an HNSW graph of the unit rows of `vectors` (keys: row numbers) to `path`, atomically;
    returns its parameters."""
    import usearch
    from usearch.index import Index

    graph = Index(
        ndim=int(vectors.shape[1]),
        metric="ip",
        dtype="f16",
        connectivity=connectivity,
        expansion_add=expansion_add,
        expansion_search=expansion_search,
    )
    graph.add(np.arange(len(vectors), dtype=np.uint64), np.ascontiguousarray(vectors, dtype=np.float16))
    with atomic.atomic_path(Path(path)) as tmp:
        graph.save(str(tmp))
    return {
        "library": "usearch",
        "version": usearch.__version__,
        "metric": "ip",
        "dtype": "f16",
        "connectivity": connectivity,
        "expansion_add": expansion_add,
        "expansion_search": expansion_search,
        "rows": len(vectors),
        "dim": int(vectors.shape[1]),
    }


def update(
    folder: Path, record: dict, threshold: int, *, rows: int, load_vectors: Callable[[], np.ndarray]
) -> dict:
    """After embedding: the record's "ann" entry for `folder` (`rows` vectors in row order), building the
    graph when there are at least `threshold` rows and the current one is missing or stale, removing it
    below the threshold. The vectors are read (`load_vectors`) only when a graph is built. Returns the
    record to save."""
    folder = Path(folder)
    path = folder / INDEX_FILE
    previous = record.get("ann")
    record = {k: v for k, v in record.items() if k != "ann"}
    if rows < threshold:
        path.unlink(missing_ok=True)
        return record
    current = fingerprint(folder)
    if (
        isinstance(previous, dict)
        and previous.get("vectors") == current
        and path.is_file()
        and previous.get("rows") == rows
    ):
        return {**record, "ann": previous}
    info(f"{folder}: building the ANN index of {rows} vectors ({INDEX_FILE})")
    started = time.perf_counter()
    entry = {**build(load_vectors(), path), "file": INDEX_FILE, "vectors": current}
    info(f"{folder}: ANN index built in {time.perf_counter() - started:.1f}s")
    return {**record, "ann": entry}


class Graph:
    """An opened ANN index: `candidates(query, k)` are row numbers, nearest first."""

    def __init__(self, index, expansion_search: int):
        self._index = index
        self._expansion_search = expansion_search

    def __len__(self) -> int:
        return len(self._index)

    def candidates(self, query: np.ndarray, k: int) -> np.ndarray:
        # A beam narrower than k cannot return k good rows: widen it with k.
        self._index.expansion_search = max(self._expansion_search, 2 * k)
        matches = self._index.search(np.asarray(query, dtype=np.float16), k)
        return np.asarray(matches.keys, dtype=np.int64)


def open_graph(folder: Path, record: dict, rows: int) -> Graph | None:
    """The folder's ANN index when the record names one that still matches its `rows` vectors; None
    (exact search) when there is none, and None with a warning when it is stale or unreadable."""
    entry = record.get("ann")
    if not isinstance(entry, dict):
        return None
    folder = Path(folder)
    path = folder / entry.get("file", INDEX_FILE)
    if entry.get("vectors") != fingerprint(folder) or entry.get("rows") != rows or not path.is_file():
        warn(
            f"{folder}: the ANN index is older than the vectors; searching exactly "
            "(rerun the clipit embed --out command to rebuild it)"
        )
        return None
    from usearch.index import Index

    try:
        index = Index.restore(str(path), view=True)
    except Exception as exc:  # a truncated or foreign file: usearch raises plain RuntimeError/ValueError
        warn(f"{path} cannot be read ({exc}); searching exactly (rerun clipit embed --out to rebuild it)")
        return None
    if index is None or len(index) != rows or index.ndim != entry.get("dim"):
        warn(f"{path} does not match the vectors; searching exactly (rerun clipit embed --out to rebuild it)")
        return None
    return Graph(index, int(entry.get("expansion_search", EXPANSION_SEARCH)))
