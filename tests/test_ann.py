"""The ANN index of an embedded folder: recall against the exact scan, use by `clipit search`, staleness."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from clipit import ann
from clipit.cli.main import app
from clipit.search import Index, load_index, rank
from tests.support.images import write_images

runner = CliRunner()


def clustered(rows: int, dim: int, *, clusters: int, spread: float, seed: int) -> np.ndarray:
    """Unit rows around random centres, noise `spread` times a centre's norm: neighbours are closer than
    strangers, as with image embeddings, but a cluster's members are still hard to tell apart."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    out = centres[rng.integers(0, clusters, rows)] + spread * rng.standard_normal((rows, dim)).astype(
        np.float32
    )
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_recall_at_10_against_the_exact_scan(tmp_path):
    """20k vectors of dim 128 keep the suite fast; benchmarks/ann.py measures 100k of dim 512."""
    drawn = clustered(20_200, 128, clusters=200, spread=1.0, seed=0)
    vectors = drawn[:20_000].astype(np.float16).astype(np.float32)  # what the shards hold
    queries = drawn[20_000:]
    params = ann.build(vectors, tmp_path / "g.usearch")
    assert params["rows"] == 20_000 and params["library"] == "usearch"
    from usearch.index import Index as Usearch

    graph = ann.Graph(Usearch.restore(str(tmp_path / "g.usearch"), view=True), params["expansion_search"])
    paths = [str(i) for i in range(len(vectors))]
    exact, approx = Index(vectors, paths, tmp_path, "m"), Index(vectors, paths, tmp_path, "m", graph)
    recalls = []
    for query in queries:
        truth = {h.path.name for h in rank(exact, query, 10)}
        found = rank(approx, query, 10)
        recalls.append(len(truth & {h.path.name for h in found}) / 10)
        scores = [h.score for h in found]
        assert scores == sorted(scores, reverse=True)  # candidates re-scored exactly, best first
        assert scores[0] == pytest.approx(float(vectors[int(found[0].path.name)] @ query), abs=1e-6)
    assert np.mean(recalls) >= 0.95, np.mean(recalls)


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    write_images(folder / "a", [(40, 30), (32, 32), (50, 80), (64, 64), (28, 44), (36, 36)])
    write_images(folder / "b", [(33, 47), (90, 41), (48, 48), (52, 30), (30, 52), (44, 44)], seed=3)
    return folder


def search_lines(index, query="un gatto rosso", k=5):
    result = runner.invoke(app, ["search", query, "--index", str(index), "-k", str(k)])
    assert result.exit_code == 0, result.stderr
    return result.stdout.splitlines(), result.stderr


def exact_lines(index, encoder, query="un gatto rosso", k=5):
    loaded = load_index(index)
    hits = rank(
        Index(loaded.vectors, loaded.paths, loaded.root, loaded.model), encoder.encode_texts([query])[0], k
    )
    return [f"{h.rank}\t{h.score:.4f}\t{h.path}" for h in hits], hits


def test_search_through_the_ann_index_matches_the_exact_scan(tiny_model, encoder, photos, tmp_path):
    out = tmp_path / "index"
    made = runner.invoke(
        app,
        [
            "embed",
            str(photos),
            "--model",
            str(tiny_model),
            "--out",
            str(out),
            "--shard-size",
            "5",
            "--ann-threshold",
            "0",
        ],
    )
    assert made.exit_code == 0, made.stderr
    record = json.loads((out / "embed.json").read_text())
    assert record["ann"]["rows"] == 12 and record["ann"]["file"] == ann.INDEX_FILE
    assert (out / ann.INDEX_FILE).is_file()
    assert load_index(out).ann is not None and len(load_index(out).ann) == 12

    expected, hits = exact_lines(out, encoder)
    assert len({round(h.score, 6) for h in hits}) == len(hits)  # no ties: one right order
    lines, _ = search_lines(out)
    assert [line.split("\t")[2] for line in lines] == [line.split("\t")[2] for line in expected]
    assert [float(line.split("\t")[1]) for line in lines] == pytest.approx([h.score for h in hits], abs=1e-3)


def test_below_the_threshold_there_is_no_index_and_search_is_exact(tiny_model, photos, tmp_path):
    out = tmp_path / "index"
    args = ["embed", str(photos), "--model", str(tiny_model), "--out", str(out)]
    assert runner.invoke(app, [*args, "--ann-threshold", "0"]).exit_code == 0
    assert (out / ann.INDEX_FILE).is_file()
    again = runner.invoke(app, args)  # the default threshold (50,000) is above 12 rows: the index goes
    assert again.exit_code == 0, again.stderr
    assert not (out / ann.INDEX_FILE).exists() and "ann" not in json.loads((out / "embed.json").read_text())
    assert load_index(out).ann is None


def test_a_stale_index_is_ignored_then_rebuilt(tiny_model, encoder, photos, tmp_path):
    out = tmp_path / "index"
    args = [
        "embed",
        str(photos),
        "--model",
        str(tiny_model),
        "--out",
        str(out),
        "--shard-size",
        "5",
        "--ann-threshold",
        "0",
    ]
    assert runner.invoke(app, args).exit_code == 0
    built = (out / ann.INDEX_FILE).stat().st_mtime_ns
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)  # new modification times: the copy's index is still current
    assert load_index(copy).ann is not None
    kept = runner.invoke(app, args)  # nothing changed: the index is kept as it is
    assert kept.exit_code == 0 and "building the ANN index" not in kept.stderr
    assert (out / ann.INDEX_FILE).stat().st_mtime_ns == built

    # An image rewritten, its shard re-embedded by a run killed before the rebuild: the record and the
    # graph are still the old ones, and row 0's vector is not the one the graph holds.
    saved = {name: (out / name).read_bytes() for name in ("embed.json", ann.INDEX_FILE)}
    write_images(tmp_path / "other", [(70, 20)], seed=11)
    os.replace(tmp_path / "other" / "img00.png", photos / "a" / "img00.png")
    changed = runner.invoke(app, args)
    assert changed.exit_code == 0 and "1 shard(s) no longer match" in " ".join(changed.stderr.split())
    for name, data in saved.items():
        (out / name).write_bytes(data)
    loaded = load_index(out)
    assert loaded.ann is None
    lines, stderr = search_lines(out)
    assert "the ANN index is older than the vectors; searching exactly" in " ".join(stderr.split())
    assert lines == exact_lines(out, encoder)[0]

    rebuilt = runner.invoke(app, args)
    assert rebuilt.exit_code == 0, rebuilt.stderr
    assert "building the ANN index of 12 vectors" in " ".join(rebuilt.stderr.split())
    assert load_index(out).ann is not None
    lines, stderr = search_lines(out)
    assert "older than the vectors" not in stderr and lines == exact_lines(out, encoder)[0]
