"""Sending unique texts to a backend: packs, worker threads, retries, fallback, and commits.

Remote providers: texts are packed up to the provider's character limit and the packs go to a thread
pool (`concurrency` requests in flight under one rate limit). Worker threads only talk to the network;
the calling thread commits each finished pack to the cache at once (SQLite stays single-threaded and a
kill loses at most the requests in flight). A pack whose reply does not split back (or that the provider
refuses) is resubmitted as single-caption jobs, each committed as it lands. When the first
`UNPACK_AFTER` packs all go that way, the provider does not keep the separator (or takes no packs):
packing is switched off for the rest of the run and the queued packs go one by one unsent. After
`ABORT_AFTER` consecutive jobs that ran out of retries the provider is taken to be down: nothing more
is sent and the caller reports it.

Local models (marian): batches run one after the other in the calling thread, committed per batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Protocol

from clipit.config.translate import TranslateConfig
from clipit.console import warn
from clipit.data.translate import packing
from clipit.data.translate.cache import TranslationCache
from clipit.data.translate.providers import PermanentError, Provider, TransientError
from clipit.data.translate.retry import RateLimiter, RequestCounter, with_retries

ABORT_AFTER = 3  # consecutive jobs out of retries before the provider is taken to be down
UNPACK_AFTER = 3  # packs that failed to split back, with none that did, before packing is switched off


@dataclass
class DispatchResult:
    translated: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # text -> why
    requests: int = 0
    fallbacks: int = 0  # packs whose captions were sent one by one (reply did not split back, or unpacked)
    aborted: str | None = None  # why the run stopped early, if it did


@dataclass
class _Outcome:
    translations: list[str] | None = None
    error: str | None = None
    transient: bool = False  # the error is "out of retries" on a transient failure
    fatal: bool = False  # the provider refuses us (bad key): stop the run
    mismatch: bool = False  # packed reply did not split back: resend one by one


@dataclass
class Shared:
    """What every worker thread shares, kept across the calls of one run (one rate limit, one request
    count, and packing stays off once switched off)."""

    limiter: RateLimiter
    counter: RequestCounter = field(default_factory=RequestCounter)
    stop: threading.Event = field(default_factory=threading.Event)  # the run is ending: no more waiting
    unpacked: threading.Event = field(default_factory=threading.Event)  # packing is switched off
    packs_split: int = 0
    packs_mismatched: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record_pack(self, split: bool) -> None:
        """Called by the worker itself, so packing stops within the packs already in flight."""
        with self.lock:
            self.packs_split += split
            self.packs_mismatched += not split
            if not self.packs_split and self.packs_mismatched >= UNPACK_AFTER:
                self.unpacked.set()


class LocalModel(Protocol):
    def translate(self, texts: Sequence[str]) -> list[str]: ...


def translate_remote(
    provider: Provider,
    texts: Sequence[str],
    cfg: TranslateConfig,
    cache: TranslationCache,
    advance: Callable[[int], None],
    shared: Shared | None = None,
) -> DispatchResult:
    """`result.requests` counts every request `shared` has seen, in earlier calls too."""
    result = DispatchResult()
    shared = shared or Shared(RateLimiter(cfg.requests_per_second))
    shared.stop.clear()  # set when an earlier call ended
    packs = packing.pack(texts, provider.spec.max_chars, cfg.separator)
    pool = ThreadPoolExecutor(max_workers=cfg.concurrency, thread_name_prefix="translate")

    def submit(job: list[str]) -> Future[_Outcome]:
        return pool.submit(_run_job, provider, job, cfg, shared)

    pending: dict[Future[_Outcome], list[str]] = {submit(job): job for job in packs}
    consecutive_give_ups = 0
    warned = shared.unpacked.is_set()  # an earlier call already said so
    try:
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                job = pending.pop(future)
                if future.cancelled():
                    continue
                outcome = future.result()
                if outcome.translations is not None:
                    found = dict(zip(job, outcome.translations, strict=True))
                    cache.store(found)
                    result.translated.update(found)
                    consecutive_give_ups = 0
                    advance(len(job))
                elif outcome.mismatch:
                    result.fallbacks += 1
                    if shared.unpacked.is_set() and not warned:
                        warned = True
                        warn(
                            f"{shared.packs_mismatched} packed requests were refused or did not split back "
                            "into their captions: "
                            "sending captions one by one from now on (check translate.separator and "
                            "translate.max_chars_per_request for this provider)"
                        )
                    for text in job:
                        pending[submit([text])] = [text]
                else:
                    for text in job:
                        result.failed[text] = outcome.error or "unknown error"
                    advance(len(job))
                    consecutive_give_ups = consecutive_give_ups + 1 if outcome.transient else 0
                    if result.aborted is None and outcome.fatal:
                        result.aborted = f"the provider refused the request ({outcome.error})"
                    elif result.aborted is None and consecutive_give_ups >= ABORT_AFTER:
                        result.aborted = (
                            f"{ABORT_AFTER} requests in a row failed after all retries ({outcome.error})"
                        )
                    if result.aborted is not None:
                        shared.stop.set()
                        for other in pending:
                            other.cancel()
    finally:
        shared.stop.set()  # on an exception (Ctrl-C) too: workers stop waiting between retries
        pool.shutdown(wait=False, cancel_futures=True)  # stopping early: requests in flight end by timeout
        result.requests = shared.counter.value
    return result


def _run_job(
    provider: Provider,
    texts: list[str],
    cfg: TranslateConfig,
    shared: Shared,
) -> _Outcome:
    if len(texts) > 1 and shared.unpacked.is_set():
        return _Outcome(mismatch=True)  # not sent: the caller resends these one by one
    joined = packing.join(texts, cfg.separator)
    try:
        reply = with_retries(
            lambda: provider.request(joined),
            retries=cfg.retries,
            backoff=cfg.backoff,
            limiter=shared.limiter,
            counter=shared.counter,
            stop=shared.stop,
        )
    except TransientError as exc:
        return _Outcome(error=f"gave up after {cfg.retries} retries: {exc}", transient=True)
    except PermanentError as exc:
        if exc.refused:
            return _Outcome(error=str(exc), fatal=True)
        if len(texts) == 1:
            return _Outcome(error=str(exc))
        # refused for its size, or for what one caption in it contains: try them one by one
        shared.record_pack(split=False)
        return _Outcome(mismatch=True)
    if len(texts) == 1:
        reply = reply.strip()
        return _Outcome(translations=[reply]) if reply else _Outcome(error="empty translation")
    parts = packing.split(reply, len(texts), cfg.separator)
    shared.record_pack(split=parts is not None)
    return _Outcome(mismatch=True) if parts is None else _Outcome(translations=parts)


def translate_local(
    model_factory: Callable[[], LocalModel],
    texts: Sequence[str],
    batch_size: int,
    cache: TranslationCache,
    advance: Callable[[int], None],
) -> DispatchResult:
    """Batches through a local model; the model is only loaded when there is something to translate."""
    result = DispatchResult()
    if not texts:
        return result
    model = model_factory()
    for start in range(0, len(texts), batch_size):
        batch = list(texts[start : start + batch_size])
        outputs = model.translate(batch)
        result.requests += 1
        found = {text: out.strip() for text, out in zip(batch, outputs, strict=True) if out.strip()}
        cache.store(found)
        result.translated.update(found)
        for text in batch:
            if text not in found:
                result.failed[text] = "empty translation"
        advance(len(batch))
    return result
