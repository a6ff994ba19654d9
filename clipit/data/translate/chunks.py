"""Translating a manifest chunk after chunk, each distinct caption counted and paid for once.

What must span chunks is small: one 8-byte id per distinct caption seen so far (a caption of an earlier
chunk is taken from the cache, or from the failures, never sent again), the failed captions with their
reasons, and the backend (a local model loaded once; a remote provider's rate limit, request count and
packing switch shared by every chunk).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from clipit.config.translate import TranslateConfig
from clipit.console import progress
from clipit.data import string_ids
from clipit.data.translate.cache import TranslationCache
from clipit.data.translate.dispatch import DispatchResult, Shared, translate_local, translate_remote
from clipit.data.translate.providers import Provider, ProviderSpec
from clipit.data.translate.retry import RateLimiter


def with_last(batches: Iterator[pa.Table]) -> Iterator[tuple[pa.Table, bool]]:
    """Each batch, and whether it is the last one."""
    previous = next(batches, None)
    for batch in batches:
        yield previous, False
        previous = batch
    if previous is not None:
        yield previous, True


class Chunks:
    """Translates the captions of one chunk after another, each distinct caption counted and sent once."""

    def __init__(self, cfg: TranslateConfig, spec: ProviderSpec, cache: TranslationCache, summary: Any):
        self.cfg, self.spec, self.cache, self.summary = cfg, spec, cache, summary
        self.seen = np.zeros(0, np.uint64)  # ids of the captions of earlier chunks, sorted
        self.failed: dict[str, str] = {}  # caption -> why, for every chunk's rows
        self.aborted: str | None = None
        self._stack = contextlib.ExitStack()
        self._bar: Any = None
        self._task: Any = None
        self._total = 0
        self._model: Any = None
        self._provider: Provider | None = None
        self._shared: Shared | None = None

    def __enter__(self) -> Chunks:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def translate(self, texts: list[str]) -> dict[str, str]:
        """Translations of `texts` (from the cache or the backend); failures land in `self.failed`."""
        wanted = list(dict.fromkeys(texts))
        ids = string_ids.of(wanted)
        earlier = np.isin(ids, self.seen)
        self.seen = np.union1d(self.seen, ids)
        known = self.cache.lookup(wanted)
        # a caption of an earlier chunk is in the cache or failed; one that is neither shares its id
        # with another caption (about 1 in 2^64), so it is new after all
        new = [
            text
            for text, seen in zip(wanted, earlier.tolist(), strict=True)
            if not seen or (text not in known and text not in self.failed)
        ]
        todo = [text for text in new if text not in known]
        self.summary.unique_texts += len(new)
        self.summary.cached += len(new) - len(todo)
        if todo and self.aborted is None:
            result = self._dispatch(todo)
            known.update(result.translated)
            self.failed.update(result.failed)
            self.aborted = result.aborted
            self.summary.translated += len(result.translated)
            self.summary.failed += len(result.failed)
            self.summary.requests = (
                result.requests if self._shared else self.summary.requests + result.requests
            )
            self.summary.fallbacks += result.fallbacks
        return known

    def _dispatch(self, todo: list[str]) -> DispatchResult:
        if self._bar is None:  # one progress bar for the run, shown once there is something to send
            self._bar = self._stack.enter_context(progress())
            self._task = self._bar.add_task(f"translate ({self.spec.name})", total=0)
        self._total += len(todo)
        self._bar.update(self._task, total=self._total)

        def advance(count: int) -> None:
            self._bar.advance(self._task, count)

        cfg = self.cfg
        if self.spec.name == "marian":
            from clipit.data.translate.marian import MarianModel

            if self._model is None:
                self._model = MarianModel(cfg.marian_model)
            return translate_local(lambda: self._model, todo, cfg.batch_size, self.cache, advance)
        if self._provider is None:
            self._provider = Provider(cfg)
            self._shared = Shared(RateLimiter(cfg.requests_per_second))
        return translate_remote(self._provider, todo, cfg, self.cache, advance, self._shared)
