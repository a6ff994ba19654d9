"""Search an embedded folder (from `clipit embed --out DIR`) with a text query or an image.

The index is the folder's float16 shards, read back as float32, with the metadata paths in the same
order. The query is embedded with the same encoder code as the index (clipit.encode), and results
are the k highest cosine scores (rows are unit vectors, so a dot product).
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from clipit import atomic
from clipit.config.embed import EmbedConfig
from clipit.console import warn
from clipit.embed import EMBED_RECORD
from clipit.encode import IMAGE_EXTENSIONS, Encoder
from clipit.errors import ConfigError, DataError


@dataclass(frozen=True)
class Index:
    vectors: np.ndarray  # float32 [N, D]
    paths: list[str]  # relative to `root`
    root: Path
    model: str


@dataclass(frozen=True)
class Hit:
    rank: int
    score: float
    path: Path


def load_index(folder: Path) -> Index:
    folder = Path(folder)
    record_file = folder / EMBED_RECORD
    if not record_file.is_file():
        raise DataError(f"{folder} is not an embedded folder (no {EMBED_RECORD})", "make one with clipit embed DIR --out")
    record = json.loads(record_file.read_text())
    vectors, paths = [], []
    for metadata in sorted((folder / "metadata").glob("metadata_*.parquet")):
        shard = metadata.stem.split("_")[-1]
        emb_file = folder / "img_emb" / f"img_emb_{shard}.npy"
        if not emb_file.is_file():
            raise DataError(f"{emb_file} is missing", "rerun the same clipit embed --out command to finish it")
        shard_vectors = np.load(emb_file, allow_pickle=False)
        shard_paths = pq.read_table(metadata, columns=["image_path"]).column("image_path").to_pylist()
        if len(shard_vectors) != len(shard_paths):
            raise DataError(f"{emb_file} has {len(shard_vectors)} rows, {metadata} {len(shard_paths)}", "re-embed")
        vectors.append(shard_vectors.astype(np.float32))
        paths += shard_paths
    if not vectors:
        raise DataError(f"{folder} holds no finished shards", "rerun the clipit embed --out command")
    expected = -(-record["files"] // record["shard_size"])
    if len(vectors) < expected:
        warn(f"{folder}: only {len(vectors)} of {expected} shards are finished; searching those")
    return Index(np.concatenate(vectors), paths, Path(record["root"]), record.get("model", "?"))


def is_image_query(query: str) -> bool:
    path = Path(query)
    return path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()


def embed_query(encoder: Encoder, query: str) -> np.ndarray:
    """A [D] unit vector: the image at `query` when it is an image file, else the text."""
    if is_image_query(query):
        encoded = encoder.encode_images([Path(query)], batch_size=1, description="query image")
        if encoded.failures:
            raise DataError(f"query image {query}: {encoded.failures[0][1]}", "pass a readable image or a text")
        return encoded.vectors[0]
    if not query.strip():
        raise DataError("the query is empty", "pass a text or an image path")
    return encoder.encode_texts([query], batch_size=1, description="query")[0]


def search(encoder: Encoder, index: Index, query: str, k: int) -> list[Hit]:
    if encoder.dim != index.vectors.shape[1]:
        raise DataError(
            f"the index holds {index.vectors.shape[1]}-d vectors but {encoder.name} makes {encoder.dim}-d ones",
            f"search with the model that built the index ({index.model})",
        )
    if encoder.name != index.model:
        warn(f"the index was built with {index.model}, the query uses {encoder.name}")
    scores = index.vectors @ embed_query(encoder, query)
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.lexsort((top, -scores[top]))]  # by score, ties by index: a stable order
    return [Hit(rank + 1, float(scores[i]), index.root / index.paths[i]) for rank, i in enumerate(top)]


def write_contact_sheet(hits: list[Hit], query: str, path: Path) -> None:
    """An HTML page of the hits as thumbnails with rank and score; links relative to the page."""
    path = Path(path)
    cells = []
    for hit in hits:
        source = os.path.relpath(hit.path.resolve(), path.resolve().parent)
        link = html.escape(Path(source).as_posix(), quote=True)
        name = html.escape(hit.path.name)
        cells.append(
            f'<figure><a href="{link}"><img src="{link}" alt="{name}" loading="lazy"></a>'
            f"<figcaption>{hit.rank}. {hit.score:.4f}<br>{name}</figcaption></figure>"
        )
    title = html.escape(query)
    page = f"""<!doctype html>
<html lang="it"><head><meta charset="utf-8"><title>clipit search: {title}</title>
<style>body{{font-family:sans-serif}} figure{{display:inline-block;margin:6px;width:180px;vertical-align:top}}
img{{width:180px;height:180px;object-fit:cover}} figcaption{{font-size:12px;word-break:break-all}}</style>
</head><body><h1>{title}</h1>
{chr(10).join(cells)}
</body></html>
"""
    atomic.write_text(path, page)


def run(cfg: EmbedConfig, query: str, *, html_out: Path | None = None) -> list[Hit]:
    """`clipit search`: rank `cfg.index` by `query` with `cfg.model` (default: the index's own model)."""
    from clipit.encode import open_model

    if cfg.index is None:
        raise ConfigError("no index folder given", "pass --index DIR (made by clipit embed DIR --out) or set embed.index")
    index = load_index(cfg.index)
    encoder = open_model(cfg.model or index.model, dtype=cfg.dtype)
    hits = search(encoder, index, query, cfg.k)
    if html_out is not None:
        write_contact_sheet(hits, query, html_out)
    return hits
