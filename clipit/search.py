"""Search an embedded folder (from `clipit embed --out DIR`) with a text query or an image.

The index is the folder's float16 shards, read back as float32, with the metadata paths in the same
order (clipit.embed_index). The query is embedded with the same encoder code as the index
(clipit.encode), and results are the k highest cosine scores (rows are unit vectors, so a dot product).
The index records its model as an absolute path (or a hub id) and its images' root as an absolute path,
so a search works from any folder. A folder with a current ANN index (clipit.ann) is searched through
it: its candidates are scored exactly; otherwise every vector is scanned.

A query that names an image file (by its extension) is that image; such a file that does not exist is
an error rather than a text query, since ranking by the words "photo.jpg" is never what was meant.
"""

from __future__ import annotations

import html
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipit import ann, atomic, embed_index
from clipit.config.embed import EmbedConfig
from clipit.console import warn
from clipit.encode import Encoder
from clipit.errors import ConfigError, DataError
from clipit.image_files import IMAGE_EXTENSIONS
from clipit.outputs import check_output_file


@dataclass(frozen=True)
class Index:
    vectors: np.ndarray  # float32 [N, D]
    paths: list[str]  # relative to `root`
    root: Path
    model: str
    ann: ann.Graph | None = None  # the folder's ANN index when it has a current one (else: exact scan)


@dataclass(frozen=True)
class Hit:
    rank: int
    score: float
    path: Path


def load_index(folder: Path) -> Index:
    vectors, paths, record = embed_index.read(folder)
    graph = ann.open_graph(folder, record, len(vectors))
    return Index(vectors, paths, Path(record["root"]), record.get("model", "?"), graph)


def query_image(query: str) -> Path | None:
    """The image a query names, None for a text query; an error for a named image that cannot be opened."""
    path = Path(query).expanduser()
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        return None
    if not path.exists():
        raise DataError(f"query image {query} does not exist", "pass an existing image file, or a text query")
    if not path.is_file():
        raise DataError(f"query image {query} is not a regular file", "pass an image file, or a text query")
    return path


def is_image_query(query: str) -> bool:
    return query_image(query) is not None


def check_query(query: str) -> Path | None:
    """`query_image(query)`, and an error for an empty text."""
    image = query_image(query)
    if image is None and not query.strip():
        raise DataError("the query is empty", "pass a text or an image path")
    return image


def embed_query(encoder: Encoder, query: str) -> np.ndarray:
    """A [D] unit vector: the image at `query` when it names an image file, else the text."""
    image = check_query(query)
    if image is not None:
        encoded = encoder.encode_images([image], batch_size=1, description="query image")
        if encoded.failures:
            raise DataError(
                f"query image {query}: {encoded.failures[0][1]}", "pass a readable image or a text"
            )
        return encoded.vectors[0]
    return encoder.encode_texts([query], batch_size=1, description="query")[0]


def search(encoder: Encoder, index: Index, query: str, k: int) -> list[Hit]:
    if encoder.dim != index.vectors.shape[1]:
        raise DataError(
            f"the index holds {index.vectors.shape[1]}-d vectors but {encoder.name} makes {encoder.dim}-d ones",
            f"search with the model that built the index ({index.model})",
        )
    if embed_index.model_reference(encoder.name) != index.model:
        warn(f"the index was built with {index.model}, the query uses {encoder.name}")
    return rank(index, embed_query(encoder, query), k)


def rank(index: Index, query_vector: np.ndarray, k: int) -> list[Hit]:
    """The k rows of `index` closest to a unit `query_vector`, best first (ties by row: a stable order).
    With an ANN index the rows are its candidates, scored exactly like the scan scores them."""
    k = min(k, len(index.vectors))
    if index.ann is not None and k < len(index.vectors):
        top = index.ann.candidates(query_vector, k)
        top = top[(top >= 0) & (top < len(index.vectors))]  # unfilled slots of a short answer
        scores = index.vectors[top] @ query_vector
    else:
        scores = index.vectors @ query_vector
        top = np.argpartition(-scores, k - 1)[:k]
        scores = scores[top]
    order = np.lexsort((top, -scores))  # by score, ties by index: a stable order
    return [Hit(rank + 1, float(scores[j]), index.root / index.paths[top[j]]) for rank, j in enumerate(order)]


def image_link(image: Path, page: Path) -> str:
    """The URL of `image` relative to the HTML file `page`, percent-encoded: a file name can then never
    become a scheme (`javascript:...`), a query (`?`) or a fragment (`#`)."""
    relative = Path(os.path.relpath(Path(image).resolve(), Path(page).resolve().parent)).as_posix()
    return urllib.parse.quote(relative, safe="/")


def write_contact_sheet(hits: list[Hit], query: str, path: Path) -> None:
    """An HTML page of the hits as thumbnails with rank and score; links relative to the page."""
    path = Path(path)
    cells = []
    for hit in hits:
        link = html.escape(image_link(hit.path, path), quote=True)
        name = html.escape(hit.path.name, quote=True)
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
        raise ConfigError(
            "no index folder given", "pass --index DIR (made by clipit embed DIR --out) or set embed.index"
        )
    check_query(query)  # before loading anything
    if html_out is not None:
        check_output_file(html_out, "--html")
    index = load_index(cfg.index)
    encoder = open_model(cfg.model or index.model, dtype=cfg.dtype, compilation_cache=cfg.compilation_cache)
    hits = search(encoder, index, query, cfg.k)
    if html_out is not None:
        write_contact_sheet(hits, query, html_out)
    return hits
