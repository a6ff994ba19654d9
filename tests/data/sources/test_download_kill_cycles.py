"""Repeated `kill -9` / rerun of `clipit download cc3m`: every rerun finishes, no worker outlives clipit,
and the result equals an uninterrupted download.

What used to hang: img2dataset's pool replaces a worker after 5 shards, from a helper thread, and a death
signal tied to that thread killed the replacement (while it held the pool's queue lock) when the thread
exited inside `Pool.terminate()`. Hence more than 5 shards per run, not a multiple of 5 (23 here), so
that the last worker is a replacement that has run a shard.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.data.sources.helpers import image_of, rows_by_key
from tests.support.image_server import fast_download_args

URLS = 115
PER_SHARD = 5  # 23 shards
RUN_TIMEOUT_S = 120  # a hang fails the test instead of stalling the suite
_COLUMNS = ["key", "status", "error", "caption_en", "shard", "index", "width", "height", "image_sha256"]


def _session_processes(session: int) -> list[int]:
    """Live (non-zombie) processes of a session, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == session and fields[0] != "Z":  # fields: state, ppid, pgrp, session
                found.append(int(entry.name))
    return found


def _start(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    with open(log, "ab") as stream:
        return subprocess.Popen(
            [sys.executable, "-m", "clipit.cli.main", *args],
            stdout=stream,
            stderr=stream,
            env=env,
            start_new_session=True,  # its own session: its workers are found (and cleaned up) by session id
        )


def _run_to_end(args: list[str], log: Path) -> None:
    proc = _start(args, log)
    try:
        code = proc.wait(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the download hung (> {RUN_TIMEOUT_S} s): {log.read_text()[-3000:]}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert code == 0, log.read_text()[-3000:]


def _finished(out: Path) -> int:
    return len(list((out / "images").glob("*_stats.json")))


def _download_args(tsv: Path, out: Path) -> list[str]:
    return [
        "download",
        "cc3m",
        "--tsv",
        str(tsv),
        "--out",
        str(out),
        *fast_download_args(PER_SHARD, threads=2),
    ]


@pytest.mark.slow
def test_three_kill_9_and_rerun_cycles_finish_and_equal_an_uninterrupted_run(tmp_path, image_server):
    tsv = tmp_path / "gcc.tsv"
    tsv.write_text(
        "".join(f"caption {i}\t{image_server.url(f'ok/{40 + i % 7}x30/k{i}')}\n" for i in range(URLS)),
        encoding="utf-8",
    )
    reference, out, log = tmp_path / "reference", tmp_path / "killed", tmp_path / "log.txt"
    _run_to_end(_download_args(tsv, reference), log)

    image_server.delay_seconds = 0.05  # slow enough to kill mid-run, fast enough for a short test
    for cycle in range(3):
        before = _finished(out) if (out / "images").is_dir() else 0
        proc = _start(_download_args(tsv, out), log)
        try:
            deadline = time.monotonic() + RUN_TIMEOUT_S
            while not (out / "images").is_dir() or _finished(out) < before + 3:
                assert proc.poll() is None, f"cycle {cycle}: ended before the kill: {log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, f"cycle {cycle}: no progress: {log.read_text()[-3000:]}"
                time.sleep(0.02)
            os.kill(proc.pid, signal.SIGKILL)  # clipit only: its workers must go by themselves
            proc.wait(timeout=10)
            deadline = time.monotonic() + 10
            while _session_processes(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert _session_processes(proc.pid) == [], f"cycle {cycle}: workers outlived clipit"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        assert not (out / "manifest.parquet").exists()

    image_server.delay_seconds = 0.0
    assert _finished(out) < URLS // PER_SHARD - 5  # the final rerun has more than 5 shards to do
    _run_to_end(_download_args(tsv, out), log)

    want, got = rows_by_key(reference), rows_by_key(out)
    assert sorted(got) == sorted(want) and len(got) == URLS
    for key, row in want.items():
        assert row["status"] == "ok", row
        assert {c: got[key][c] for c in _COLUMNS} == {c: row[c] for c in _COLUMNS}
    for key in ("cc3m/0", "cc3m/57", f"cc3m/{URLS - 1}"):
        assert image_of(out, got[key]).tobytes() == image_of(reference, want[key]).tobytes()
