"""Batch concurrent encode requests into shared forward passes.

Every request hands its texts or images to one worker thread and waits for its rows. The worker takes
what is queued (waiting a few milliseconds for more once the first item arrives), encodes all texts in
one call and all images in another, and hands each request its rows. Ten users searching at once thus
cost about one forward pass, not ten in a row, and the model is only ever called from one thread (JAX
dispatch and the encoder's compiled-function cache are not shared across threads).
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
from PIL import Image

from clipit.encode import Encoder
from clipit.errors import DataError


@dataclass
class _Job:
    kind: str  # "text" or "image"
    items: list
    future: Future


class Batcher:
    """`encode_texts` / `encode_images` from any thread, batched across callers in one worker thread."""

    def __init__(self, encoder: Encoder, *, max_batch: int = 64, wait_s: float = 0.01) -> None:
        self.encoder = encoder
        self.max_batch = max_batch
        self.wait_s = wait_s
        self.calls = 0  # forward-pass calls made (texts and images counted apart)
        self.items = 0  # items encoded
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="clipit-encoder", daemon=True)
        self._thread.start()

    def encode_texts(self, texts: list[str]) -> Future:
        """A future of float32 [len(texts), D] unit rows."""
        return self._submit("text", list(texts))

    def encode_images(self, images: list[Image.Image]) -> Future:
        """A future of float32 [len(images), D] unit rows; DataError if one cannot be encoded."""
        return self._submit("image", list(images))

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _submit(self, kind: str, items: list) -> Future:
        future: Future = Future()
        self._queue.put(_Job(kind, items, future))
        return future

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs, size = [first], len(first.items)
            deadline = time.monotonic() + self.wait_s
            while size < self.max_batch:
                try:
                    job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if job is None:
                    self._queue.put(None)  # stop after this batch
                    break
                jobs.append(job)
                size += len(job.items)
            for kind in ("text", "image"):
                batch = [
                    job for job in jobs if job.kind == kind and job.future.set_running_or_notify_cancel()
                ]
                if batch:
                    self._run(kind, batch)

    def _run(self, kind: str, jobs: list[_Job]) -> None:
        items = [item for job in jobs for item in job.items]
        try:
            vectors = self._encode(kind, items)
        except Exception as exc:  # handed to every waiting request, never kills the worker
            for job in jobs:
                job.future.set_exception(exc)
            return
        self.calls += 1
        self.items += len(items)
        start = 0
        for job in jobs:
            job.future.set_result(vectors[start : start + len(job.items)])
            start += len(job.items)

    def _encode(self, kind: str, items: list) -> np.ndarray:
        batch_size = max(1, len(items))
        if kind == "text":
            return self.encoder.encode_texts(items, batch_size=batch_size, description="requests")
        encoded = self.encoder.encode_images(items, batch_size=batch_size, description="requests")
        if encoded.failures:
            raise DataError(f"uploaded image: {encoded.failures[0][1]}", "upload a readable image")
        return encoded.vectors
