"""Packing and splitting, the SQLite cache across connections, backoff and the rate limiter."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from clipit.data.translate import packing
from clipit.data.translate.cache import TranslationCache
from clipit.data.translate.providers import TransientError
from clipit.data.translate.retry import RateLimiter, RequestCounter, backoff_delay, with_retries
from clipit.errors import DataError


def test_pack_respects_the_limit_and_keeps_order():
    texts = [f"caption number {i} " + "x" * (i % 7) for i in range(200)]
    packs = packing.pack(texts, max_chars=120, separator="\n")
    assert [t for p in packs for t in p] == texts
    assert all(len("\n".join(p)) <= 120 for p in packs)
    # greedy: adding the next caption would have crossed the limit
    for p, nxt in zip(packs, packs[1:], strict=False):
        assert len("\n".join([*p, nxt[0]])) > 120


def test_pack_sends_long_texts_and_texts_with_the_separator_alone():
    packs = packing.pack(["short", "y" * 50, "also short", "a|b", "end"], max_chars=20, separator="|")
    assert packs == [["short"], ["y" * 50], ["also short"], ["a|b"], ["end"]]


def test_split_accepts_exact_replies_and_refuses_merged_or_dropped_lines():
    assert packing.split(" uno\r\ndue\n\ntre \n", 3, "\n") == ["uno", "due", "tre"]
    assert packing.split("uno due\ntre", 3, "\n") is None  # two lines merged
    assert packing.split("uno\ndue", 3, "\n") is None
    assert packing.split("uno|due| ", 3, "|") is None  # an empty part
    assert packing.normalise("  a\n red\tdog  ") == "a red dog"


def test_cache_commits_survive_a_new_connection_and_are_keyed_by_backend_and_languages(tmp_path):
    path = tmp_path / "sub" / "cache.sqlite"
    with TranslationCache(path, "libre", "en", "it") as cache:
        cache.store({"a dog": "un cane", "a cat": "un gatto"})
    # nothing to close explicitly in a killed process: a fresh connection sees committed rows
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM translations").fetchone()[0] == 2
    with TranslationCache(path, "libre", "en", "it") as cache:
        assert cache.lookup(["a dog", "a bird", "a cat", "a dog"]) == {
            "a dog": "un cane",
            "a cat": "un gatto",
        }
    with TranslationCache(path, "google", "en", "it") as cache:
        assert cache.lookup(["a dog"]) == {}
    with TranslationCache(path, "libre", "en", "fr") as cache:
        assert cache.lookup(["a dog"]) == {}


def test_cache_lookup_of_many_texts(tmp_path):
    with TranslationCache(tmp_path / "c.sqlite", "libre", "en", "it") as cache:
        cache.store({f"t{i}": f"it{i}" for i in range(1500)})
        found = cache.lookup([f"t{i}" for i in range(0, 3000, 2)])
    assert found == {f"t{i}": f"it{i}" for i in range(0, 1500, 2)}


def test_cache_that_is_not_sqlite_is_a_data_error(tmp_path):
    path = tmp_path / "cache.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(DataError, match="cache.sqlite"):
        TranslationCache(path, "libre", "en", "it")


def test_cache_path_expands_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    with TranslationCache("~/caches/t.sqlite", "libre", "en", "it") as cache:
        assert cache.path == tmp_path / "caches" / "t.sqlite"
    assert (tmp_path / "caches" / "t.sqlite").is_file()


def test_backoff_doubles_and_honours_retry_after():
    delays = [backoff_delay(n, 0.5, None) for n in range(4)]
    for n, delay in enumerate(delays):
        assert 0.5 * 2**n <= delay <= 0.5 * 2**n * 1.1
    assert backoff_delay(0, 0.1, 3.0) == 3.0
    assert backoff_delay(0, 0.1, 1e6) == 60.0  # capped


def test_with_retries_retries_transient_errors_then_gives_up():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise TransientError("HTTP 429")
        return "ok"

    counter = RequestCounter()
    assert with_retries(flaky, retries=5, backoff=0.0, limiter=RateLimiter(1e6), counter=counter) == "ok"
    assert counter.value == 3

    def dead():
        raise TransientError("connection refused")

    counter = RequestCounter()
    with pytest.raises(TransientError):
        with_retries(dead, retries=2, backoff=0.0, limiter=RateLimiter(1e6), counter=counter)
    assert counter.value == 3  # the first try and two retries


def test_rate_limiter_spaces_starts_across_threads():
    limiter, starts, lock = RateLimiter(50.0), [], threading.Lock()

    def worker():
        for _ in range(5):
            limiter.wait()
            with lock:
                starts.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    starts.sort()
    assert starts[-1] - starts[0] >= 19 * 0.02 * 0.9  # 20 starts at 50/s
