"""The FastAPI application: API routes, the index's images and the page, over one loaded model.

Search results are ranked by clipit.search's own ranking, so the API returns the hits of
`clipit search` in its order; `path` is the path that command prints and `url` serves that image.
A text query here is always text (the API never opens a file a query names). Images are served only
by their path in the index: any other path, `..` or percent-encoded tricks included, is a 404 because
it is never looked up on disk at all.
"""

from __future__ import annotations

import asyncio
import json
from importlib import resources
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from clipit.errors import ClipitError, DataError
from clipit.search import Index
from clipit.serve.batcher import Batcher
from clipit.serve.classify import DEFAULT_TEMPLATES, classify
from clipit.serve.knn import add_knn_routes
from clipit.serve.served import IMAGE_ROUTE, MAX_K, Limits, Served
from clipit.serve.uploads import BodyLimit, UploadTooLarge, open_upload

MAX_LABELS = 50


def create_app(batcher: Batcher, index: Index, limits: Limits = Limits()) -> FastAPI:
    served = Served(batcher, index, limits)
    app = FastAPI(title="clipit", docs_url="/api/docs", openapi_url="/api/openapi.json", redoc_url=None)
    app.state.served = served
    _add_error_handlers(app)

    @app.get("/api/health")
    async def health() -> dict:
        return {
            "status": "ok",
            "model": batcher.encoder.name,
            "images": len(index.paths),
            "encoder_calls": batcher.calls,
            "encoded_items": batcher.items,
        }

    @app.get("/api/search")
    async def search_text(q: str, k: Annotated[int, Query(ge=1, le=MAX_K)] = 10) -> dict:
        return await served.results(await served.text_vector(q), k)

    @app.post("/api/search")
    async def search_image(
        image: UploadFile = File(...), k: Annotated[int, Form(ge=1, le=MAX_K)] = 10
    ) -> dict:
        return await served.results(await served.image_vector(await image.read()), k)

    @app.post("/api/classify")
    async def classify_image(
        image: UploadFile = File(...), labels: str = Form(...), templates: str | None = Form(None)
    ) -> dict:
        label_list = _text_list(labels, "labels")
        if not 2 <= len(label_list) <= MAX_LABELS:
            raise DataError(
                f"labels: {len(label_list)} given",
                f"pass 2 to {MAX_LABELS} labels, one per line or comma-separated",
            )
        template_list = _text_list(templates, "templates") if templates else DEFAULT_TEMPLATES
        picture = open_upload(await image.read(), max_pixels=limits.max_pixels)
        result = await asyncio.wait_for(
            classify(batcher, picture, label_list, template_list), limits.request_timeout_s
        )
        return result

    @app.get(IMAGE_ROUTE + "{path:path}")
    async def index_image(path: str) -> FileResponse:
        file = served.files.get(path)
        if file is None or not file.is_file():
            return JSONResponse({"detail": "not an image of the index"}, status_code=404)
        return FileResponse(file)

    add_knn_routes(app, served)
    static = Path(str(resources.files("clipit.serve") / "static"))
    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.get("/")
    async def page() -> FileResponse:
        return FileResponse(static / "index.html")

    app.add_middleware(BodyLimit, max_bytes=limits.max_upload_bytes)
    return app


def _text_list(value: str, field: str) -> list[str]:
    """A JSON list of strings, or one per line, or comma-separated."""
    value = value.strip()
    if value.startswith("["):
        try:
            items = json.loads(value)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{field}: not a JSON list ({exc})", "send a JSON list of strings or one per line"
            ) from None
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise DataError(f"{field}: not a list of strings", "send a JSON list of strings or one per line")
    else:
        items = value.splitlines() if "\n" in value else value.split(",")
    items = [item.strip() for item in items if item.strip()]
    if not items:
        raise DataError(f"{field} is empty", f"pass at least one {field[:-1]}")
    return items


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(UploadTooLarge)
    async def too_large(request: Request, exc: UploadTooLarge) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=413)

    @app.exception_handler(ClipitError)
    async def bad_input(request: Request, exc: ClipitError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(TimeoutError)
    async def timed_out(request: Request, exc: TimeoutError) -> JSONResponse:
        return JSONResponse({"detail": "the model did not answer in time; try again"}, status_code=504)
