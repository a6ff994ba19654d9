"""translate in chunks: the same manifest, review sheet and counts as in one chunk, each caption paid once."""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clipit.data import manifest
from clipit.data.translate import runner
from clipit.errors import ClipitError, NetworkError
from tests.support.libre_server import LibreServer
from tests.support.translate_data import captions, libre_config, write_manifest


def _write_source(tmp_path, n=60):
    caps = captions(20)
    # captions repeat across chunks; every 7th row has none; every 5th has a caption already (Italian
    # reference on every 10th, English on the others)
    english = [caps[(i * 7) % len(caps)] if i % 7 else None for i in range(n)]
    caption = [f"una casa {i}" if i % 5 == 0 else None for i in range(n)]
    lang = [("it" if i % 10 == 0 else "en") if i % 5 == 0 else None for i in range(n)]
    write_manifest(tmp_path / "in" / "manifest.parquet", english, caption=caption, lang=lang)
    return english


def _run(server, tmp_path, name, **overrides):
    cfg = libre_config(
        server, tmp_path, output=tmp_path / name / "m.parquet", cache=tmp_path / f"{name}.sqlite", **overrides
    )
    summary = runner.run(cfg)
    counts = dataclasses.asdict(summary)
    for volatile in ("seconds", "output", "review_files", "requests"):
        counts.pop(volatile)
    return summary, counts


def test_chunks_give_the_same_output_and_counts_and_send_each_caption_once(tmp_path, monkeypatch):
    english = _write_source(tmp_path)
    with LibreServer() as server:
        whole, whole_counts = _run(server, tmp_path, "whole", sample=12)
        once = dict(server.translated)
        server.translated.clear()
        monkeypatch.setattr(runner, "CHUNK_ROWS", 8)  # 8 chunks, the review sample spans them
        chunked, chunked_counts = _run(server, tmp_path, "chunked", sample=12)
        assert dict(server.translated) == once and set(once.values()) == {1}  # each caption sent once
    assert chunked_counts == whole_counts
    assert whole_counts["unique_texts"] == len({t for t in english if t}) and whole_counts["rows_failed"] == 0
    for a, b in zip(whole.review_files, chunked.review_files, strict=True):
        assert a.read_bytes() == b.read_bytes()
    assert whole_counts["scores"]["rows"] >= 1  # the sample holds references
    assert (tmp_path / "whole" / "m.parquet").read_bytes() == (
        tmp_path / "chunked" / "m.parquet"
    ).read_bytes()


def test_packing_switched_off_in_one_chunk_stays_off(tmp_path, monkeypatch):
    _write_source(tmp_path)
    monkeypatch.setattr(runner, "CHUNK_ROWS", 8)
    with LibreServer() as server:
        server.mangle = True  # packs never split back: packing goes off after the first few
        _, counts = _run(server, tmp_path, "out", max_chars_per_request=80, concurrency=1)
        packs_sent = sum(1 for lines in server.lines_per_request if lines > 1)
    assert counts["rows_failed"] == 0 and counts["translated"] == counts["unique_texts"]
    assert packs_sent == 3  # the first chunks' first three packs; no later chunk tries packing again


def test_an_abort_leaves_later_chunks_not_attempted_and_writes_every_row(tmp_path, monkeypatch):
    _write_source(tmp_path, n=40)
    monkeypatch.setattr(runner, "CHUNK_ROWS", 8)
    with LibreServer() as server:
        server.unavailable_every = 1  # every request fails: the provider is down
        with pytest.raises(NetworkError, match="stopped"):
            _run(server, tmp_path, "out", retries=0, max_chars_per_request=1)
    table = pq.read_table(tmp_path / "out" / "m.parquet")
    assert table.num_rows == 40
    errors = [e for e in table.column("error").to_pylist() if e]
    assert errors and all(e.startswith(runner.ERROR_PREFIX) for e in errors)
    assert any(e.endswith(runner.NOT_ATTEMPTED) for e in errors)
    assert manifest.read(tmp_path / "out" / "m.parquet").num_rows == 40


def test_a_bad_row_in_a_later_chunk_fails_before_any_request(tmp_path, monkeypatch):
    english = _write_source(tmp_path, n=40)
    source = tmp_path / "in" / "manifest.parquet"
    table = pq.read_table(source)
    splits = table.column("split").to_pylist()
    splits[33] = None  # every row needs a split
    table = table.set_column(table.schema.get_field_index("split"), "split", pa.array(splits, pa.string()))
    pq.write_table(table, source)
    monkeypatch.setattr(runner, "CHUNK_ROWS", 8)
    with LibreServer() as server:
        with pytest.raises(ClipitError, match="row 33: 'split' is empty"):
            _run(server, tmp_path, "out")
        assert server.requests == 0
    assert not (tmp_path / "out" / "m.parquet").exists() and english
