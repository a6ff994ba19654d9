"""kill -9 of a running `clipit translate`, then a rerun: nothing paid for is lost or sent again."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter

import pytest

from clipit.data import manifest
from clipit.data.translate import run
from tests.support.libre_server import fake_translate
from tests.support.translate_data import captions, libre_config, write_manifest
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow


def _cached_texts(path) -> set[str]:
    with sqlite3.connect(path) as db:  # what a kill left committed
        return {row[0] for row in db.execute("SELECT text FROM translations")}


def test_kill_then_rerun_loses_nothing_and_resends_nothing(server, tmp_path):
    english = captions(120, seed=7)
    source = write_manifest(tmp_path / "in" / "manifest.parquet", english)
    cfg = libre_config(server, tmp_path, max_chars_per_request=200, concurrency=2, output=source)
    server.delay = 0.25  # slow provider: the run is still going when it is killed

    command = [
        sys.executable, "-m", "clipit.cli.main", "translate",
        "--input", str(source), "--to", "it", "--backend", "libre", "--endpoint", server.url,
        "--set", f"translate.cache={cfg.cache}",
        "--set", "translate.max_chars_per_request=200",
        "--set", "translate.concurrency=2",
        "--set", "translate.requests_per_second=1000.0",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: server.served >= 4 or process.poll() is not None, "4 answered requests")
        assert process.poll() is None, process.communicate()[1].decode()[-2000:]
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    # the requests in flight at the kill finish on the server side before they are counted
    wait_until(lambda: server.in_flight == 0, "the server to finish the requests in flight", timeout=30)

    cached = _cached_texts(cfg.cache)
    paid_first = Counter(server.translated)
    assert 0 < len(cached) < len(english)
    assert cached <= set(paid_first)
    # work lost to the kill: at most the packs in flight or answered but not yet committed
    # (2 workers: two running, two finished a moment ago)
    lost = set(paid_first) - cached
    assert len(lost) <= 4 * max(server.lines_per_request)
    assert manifest.read(source).column("caption").null_count == len(english)  # input untouched

    server.delay = 0.0
    summary = run(cfg)

    paid_second = server.translated - paid_first
    assert set(paid_second) == set(english) - cached  # nothing cached is sent again; the rest is sent
    assert all(count == 1 for count in paid_second.values())
    assert summary.cached == len(cached)
    rows = manifest.read(source).to_pylist()
    assert [row["caption"] for row in rows] == [fake_translate(text) for text in english]
