"""A rate limit shared by every worker thread, and retries with exponential backoff.

Retries cover the failures that go away on their own (429, 5xx, dropped connections, timeouts): the
n-th retry waits `backoff * 2**n` seconds (plus up to 10% jitter, so that threads hit by the same 429
do not come back together), or the server's Retry-After when that is longer (capped at a minute).
Every attempt, retries included, passes the rate limit and is counted as a request sent.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from clipit.data.translate.providers import TransientError

T = TypeVar("T")
MAX_RETRY_AFTER = 60.0


class RateLimiter:
    """At most `per_second` starts per second across threads (evenly spaced, no bursts)."""

    def __init__(self, per_second: float):
        self.interval = 1.0 / per_second
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


class RequestCounter:
    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self.value += 1


def backoff_delay(attempt: int, backoff: float, retry_after: float | None) -> float:
    delay = backoff * 2**attempt
    delay += random.uniform(0, 0.1 * delay)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay


def with_retries(
    call: Callable[[], T],
    *,
    retries: int,
    backoff: float,
    limiter: RateLimiter,
    counter: RequestCounter,
    stop: threading.Event | None = None,
) -> T:
    """Run `call` (one request) until it succeeds, raises a non-transient error, or retries run out.

    Setting `stop` (the run is being aborted) ends the waiting between retries at once.
    """
    stop = stop or threading.Event()
    attempt = 0
    while True:
        if stop.is_set():
            raise TransientError("run stopped")
        limiter.wait()
        counter.add()
        try:
            return call()
        except TransientError as exc:
            if attempt >= retries or stop.wait(backoff_delay(attempt, backoff, exc.retry_after)):
                raise
            attempt += 1
