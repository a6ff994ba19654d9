"""clip-retrieval's back-end API (`clip-retrieval back`), so that its front end can use this server.

Routes as clip-retrieval serves them: `GET /indices-list`, `POST /knn-service` and `POST /metadata`.
A knn request carries one of `text`, `image` (base64 bytes), `image_url` or `embedding_input`, with
`modality`, `num_images` and `indice_name`; the answer is a list of `{"url", "image_path", "caption",
"id", "similarity"}`, best first. The index holds image embeddings only, so `modality` "text" (a
search among captions) is refused. `image_url` is accepted only for this server's own image URLs:
fetching an arbitrary URL would let any caller make the server request other hosts.
"""

from __future__ import annotations

import base64
import binascii
import urllib.parse
from pathlib import Path

import numpy as np
from fastapi import Body, FastAPI, Request

from clipit.errors import DataError
from clipit.serve.served import IMAGE_ROUTE, MAX_K, Served

INDEX_NAME = "clipit"


def add_knn_routes(app: FastAPI, served: Served) -> None:
    rows = {path: row for row, path in enumerate(served.index.paths)}

    def item(request: Request, row: int) -> dict:
        path = served.index.paths[row]
        return {
            "url": str(request.base_url).rstrip("/") + IMAGE_ROUTE + urllib.parse.quote(path, safe="/"),
            "image_path": str(served.index.root / path),
            "caption": path.rsplit("/", 1)[-1],
        }

    @app.get("/indices-list")
    async def indices_list() -> list[str]:
        return [INDEX_NAME]

    @app.post("/knn-service")
    async def knn_service(request: Request, query: dict = Body(...)) -> list[dict]:
        name = query.get("indice_name") or INDEX_NAME
        if name != INDEX_NAME:
            raise DataError(
                f"indice_name {name!r} is not served here", f"use {INDEX_NAME!r} (see /indices-list)"
            )
        if query.get("modality", "image") != "image":
            raise DataError("modality: this index holds image embeddings only", 'use "modality": "image"')
        count = query.get("num_images", 40)
        if not isinstance(count, int) or not 1 <= count <= MAX_K:
            raise DataError(f"num_images: {count!r}", f"pass an integer from 1 to {MAX_K}")
        vector = await _query_vector(served, query)
        out = []
        for hit in (await served.results(vector, count))["results"]:
            row = _row(served, rows, hit["path"])
            out.append({**item(request, row), "id": row, "similarity": hit["score"]})
        return out

    @app.post("/metadata")
    async def metadata(request: Request, query: dict = Body(...)) -> list[dict]:
        ids = query.get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, int) and 0 <= i < len(rows) for i in ids):
            raise DataError(
                "ids: not a list of row numbers of the index", f"pass integers from 0 to {len(rows) - 1}"
            )
        return [{"id": i, "metadata": item(request, i)} for i in ids]


def _row(served: Served, rows: dict[str, int], printed_path: str) -> int:
    return rows[Path(printed_path).relative_to(served.index.root).as_posix()]


async def _query_vector(served: Served, query: dict) -> np.ndarray:
    if query.get("text"):
        return await served.text_vector(str(query["text"]))
    if query.get("image"):
        try:
            data = base64.b64decode(str(query["image"]).split(",")[-1], validate=False)
        except (binascii.Error, ValueError):
            raise DataError("image: not base64", "send the image bytes base64-encoded") from None
        return await served.image_vector(data)
    if query.get("image_url"):
        path = urllib.parse.unquote(urllib.parse.urlsplit(str(query["image_url"])).path)
        file = served.files.get(path[len(IMAGE_ROUTE) :]) if path.startswith(IMAGE_ROUTE) else None
        if file is None:
            raise DataError(
                "image_url: only this server's own image URLs are accepted",
                "send the image as base64 in `image`",
            )
        return await served.image_vector(file.read_bytes())
    if query.get("embedding_input") is not None:
        vector = np.asarray(query["embedding_input"], dtype=np.float32)
        if (
            vector.shape != (served.index.vectors.shape[1],)
            or not np.isfinite(vector).all()
            or not vector.any()
        ):
            raise DataError(
                "embedding_input: wrong length or not finite", f"send {served.index.vectors.shape[1]} numbers"
            )
        return vector / np.linalg.norm(vector)
    raise DataError("no query", "send one of text, image, image_url or embedding_input")
