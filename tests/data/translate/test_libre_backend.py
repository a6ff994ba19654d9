"""`translate.run` against a real loopback LibreTranslate-compatible server (deep-translator's client)."""

from __future__ import annotations

import time

import pytest

from clipit.data import manifest
from clipit.data.translate import packing, run
from clipit.data.translate.packing import normalise
from clipit.errors import NetworkError
from tests.support.libre_server import fake_translate
from tests.support.translate_data import captions, libre_config, unique_normalised, write_manifest


def _assert_all_translated(path, english) -> None:
    table = manifest.read(path)
    for row, text in zip(table.to_pylist(), english, strict=True):
        assert row["caption"] == fake_translate(normalise(text)), row["key"]
        assert row["lang"] == "it"
        assert row["error"] is None
        assert manifest.meta_of(row)["translated_by"].startswith("libre:http://127.0.0.1:")  # with its server


def test_packs_dedupes_and_never_pays_twice(server, tmp_path):
    unique = captions(300)
    # 400 rows: 100 repeat earlier captions, some with different spacing (the same text once normalised)
    english = unique + [
        unique[i] if i % 2 else "  " + unique[i].replace(" ", "   ") + " " for i in range(100)
    ]
    write_manifest(tmp_path / "in" / "manifest.parquet", english)
    cfg = libre_config(server, tmp_path)

    summary = run(cfg)

    _assert_all_translated(cfg.output, english)
    assert set(server.translated) == set(unique)
    assert all(count == 1 for count in server.translated.values())  # each caption translated exactly once
    assert server.requests <= len(english) / 10  # packing: at most one request per 10 captions
    assert max(server.lines_per_request) > 10
    assert (summary.translated, summary.cached, summary.failed) == (300, 0, 0)
    assert summary.requests == server.requests
    assert (summary.rows_selected, summary.rows_translated) == (400, 400)

    # the same untranslated input again: everything comes from the persistent cache
    before = server.requests
    again = run(cfg.model_copy(update={"output": tmp_path / "again" / "manifest.parquet"}))
    assert server.requests == before
    assert (again.translated, again.cached, again.requests) == (0, 300, 0)
    _assert_all_translated(tmp_path / "again" / "manifest.parquet", english)

    # the translated manifest: nothing left to do
    done = run(cfg.model_copy(update={"input": cfg.output}))
    assert (done.rows_selected, done.requests) == (0, 0)
    assert server.requests == before


def test_retries_429_503_and_dropped_connections(server, tmp_path):
    english = captions(120, seed=1)
    write_manifest(tmp_path / "in" / "manifest.parquet", english)
    server.throttle_every, server.drop_every, server.unavailable_every = 3, 5, 7
    cfg = libre_config(server, tmp_path, max_chars_per_request=200, concurrency=3)

    summary = run(cfg)

    _assert_all_translated(cfg.output, english)
    assert all(server.translated[text] == 1 for text in english)
    assert server.requests > server.served  # failures really happened and were retried
    assert summary.requests == server.requests
    assert summary.failed == 0


def test_mangled_separator_falls_back_to_single_requests(server, tmp_path):
    english = captions(90, seed=2)
    write_manifest(tmp_path / "in" / "manifest.parquet", english)
    server.mangle = True
    cfg = libre_config(server, tmp_path, max_chars_per_request=200, concurrency=2)

    summary = run(cfg)

    _assert_all_translated(cfg.output, english)
    packs = len(packing.pack(english, 200, "\n"))
    assert summary.fallbacks == packs >= 12
    assert server.lines_per_request.count(1) == len(english)  # every caption, alone
    assert all(server.translated[text] == 1 for text in english)
    # packing is switched off after 3 packs that did not split (plus those already in flight)
    packed_requests = server.requests - len(english)
    assert 3 <= packed_requests <= 3 + cfg.concurrency
    assert summary.requests == server.requests


def test_failed_caption_keeps_row_and_is_retried_alone_next_run(server, tmp_path):
    english = captions(30, seed=3)
    write_manifest(tmp_path / "in" / "manifest.parquet", english)
    bad = english[7]
    server.reject = {bad}
    cfg = libre_config(server, tmp_path, max_failed_fraction=0.05)  # 1 in 30 is within it

    summary = run(cfg)

    assert (summary.translated, summary.failed) == (29, 1)
    rows = {row["caption_en"]: row for row in manifest.read(cfg.output).to_pylist()}
    assert rows[bad]["caption"] is None
    assert rows[bad]["status"] == "ok"
    assert rows[bad]["error"].startswith("translate: HTTP 400")
    assert rows[english[0]]["caption"] == fake_translate(english[0])

    server.reject = set()
    before = server.requests
    rerun = run(cfg.model_copy(update={"input": cfg.output}))
    assert server.requests == before + 1  # only the failed caption is sent
    assert (rerun.translated, rerun.failed) == (1, 0)
    _assert_all_translated(cfg.output, english)


def test_concurrency_and_rate_limit(server, tmp_path):
    english = captions(24, seed=4)
    write_manifest(tmp_path / "in" / "manifest.parquet", english)
    server.delay = 0.2
    run(libre_config(server, tmp_path, max_chars_per_request=1, concurrency=4))
    assert server.requests == 24
    assert 2 <= server.max_in_flight <= 4

    server.delay, server.arrivals = 0.0, []
    cfg = libre_config(server, tmp_path, max_chars_per_request=1, concurrency=4, requests_per_second=20.0)
    run(cfg.model_copy(update={"cache": tmp_path / "other.sqlite"}))
    arrivals = server.arrivals
    assert len(arrivals) == 24
    # 20/s: starts 50 ms apart, never early; a request may arrive late (a busy CPU), so any 5 gaps
    # span at least 4 intervals
    assert min(arrivals[i + 5] - arrivals[i] for i in range(len(arrivals) - 5)) >= 4 * 0.05
    assert arrivals[-1] - arrivals[0] >= 22 * 0.05


def test_timeouts_and_dead_server_stop_the_run(server, tmp_path):
    english = captions(50, seed=5)
    write_manifest(tmp_path / "in" / "manifest.parquet", english)
    server.delay = 5.0  # far beyond the timeout
    cfg = libre_config(server, tmp_path, max_chars_per_request=100, timeout=0.3, retries=1, concurrency=2)

    started = time.monotonic()
    with pytest.raises(NetworkError, match="failed after all retries"):
        run(cfg)
    assert time.monotonic() - started < 4.0  # the timeout applied: no request waited the full 5 s
    assert server.requests < 12  # stopped early instead of trying every pack
    table = manifest.read(cfg.output)  # still written: every row says why it has no caption
    assert table.column("caption").null_count == len(english)
    assert all(error.startswith("translate: ") for error in table.column("error").to_pylist())
    assert set(table.column("status").to_pylist()) == {"ok"}


def test_only_rows_that_need_a_caption(server, tmp_path):
    english = ["a red dog", "a blue cat", None, "a small house", "", "the big tree"]
    write_manifest(
        tmp_path / "in" / "manifest.parquet",
        english,
        status=["ok", "failed", "ok", "ok", "ok", "ok"],
        caption=[None, None, None, "una piccola casa", None, "the big tree"],
        lang=[None, None, None, "it", None, "en"],
    )
    summary = run(libre_config(server, tmp_path))
    rows = manifest.read(tmp_path / "out" / "manifest.parquet").to_pylist()
    assert [row["caption"] for row in rows] == [
        fake_translate("a red dog"),
        None,  # download failed: never paid for
        None,  # no English
        "una piccola casa",  # already Italian
        None,
        fake_translate("the big tree"),  # English in `caption`: replaced
    ]
    assert summary.rows_selected == 2
    assert set(server.translated) == {"a red dog", "the big tree"}
    assert unique_normalised(english) >= set(server.translated)
