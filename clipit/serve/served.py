"""What the routes of `clipit serve` share (clipit.serve.app's own and clip-retrieval's in
clipit.serve.knn): the index, the batcher, the servable image table and the limits."""

from __future__ import annotations

import asyncio
import urllib.parse
from dataclasses import dataclass

from clipit.errors import DataError
from clipit.search import Hit, Index, rank
from clipit.serve.batcher import Batcher
from clipit.serve.uploads import open_upload

IMAGE_ROUTE = "/images/"
MAX_K = 1000  # results per request


@dataclass(frozen=True)
class Limits:
    max_upload_bytes: int = 10 * 1024 * 1024  # a phone photo fits; anything larger is refused unread
    max_pixels: int = 40_000_000  # decoded pixels of an upload (a 160 MB RGB array at most)
    request_timeout_s: float = 60.0  # waiting for the model, per request
    max_batch: int = 64  # items per batched forward pass
    batch_wait_s: float = 0.01  # how long the first request waits for others to share its batch


class Served:
    """What the routes share: the index, the batcher, the image table and the limits."""

    def __init__(self, batcher: Batcher, index: Index, limits: Limits) -> None:
        self.batcher, self.index, self.limits = batcher, index, limits
        self.files = {path: index.root / path for path in index.paths}  # the only servable files

    def image_url(self, hit: Hit) -> str:
        relative = hit.path.relative_to(self.index.root).as_posix()
        return IMAGE_ROUTE + urllib.parse.quote(relative, safe="/")

    async def wait(self, future):
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.limits.request_timeout_s)
        except TimeoutError:
            future.cancel()
            raise

    async def text_vector(self, text: str):
        if not text.strip():
            raise DataError("the query is empty", "pass q=TEXT")
        return (await self.wait(self.batcher.encode_texts([text])))[0]

    async def image_vector(self, data: bytes):
        return (
            await self.wait(
                self.batcher.encode_images([open_upload(data, max_pixels=self.limits.max_pixels)])
            )
        )[0]

    async def results(self, vector, k: int) -> dict:
        # A full scan takes tens of milliseconds at 100k vectors: off the event loop, so concurrent
        # requests overlap instead of queueing behind each other's ranking.
        hits = await asyncio.to_thread(rank, self.index, vector, k)
        return {
            "results": [
                {"rank": h.rank, "path": str(h.path), "score": h.score, "url": self.image_url(h)}
                for h in hits
            ]
        }
