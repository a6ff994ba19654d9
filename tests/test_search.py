"""`clipit search` over a folder made by `clipit embed --out`."""

from __future__ import annotations

import re

import numpy as np
import pytest
from typer.testing import CliRunner

from clipit.cli.main import app
from clipit.config.embed import EmbedConfig
from clipit.embed import embed_to_folder
from clipit.errors import DataError
from clipit.search import load_index, run, search
from tests.eval.fixtures import make_tiny_model, write_images

runner = CliRunner()


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_model, encoder):
    root = tmp_path_factory.mktemp("search")
    model = tiny_model
    photos = root / "photos"
    write_images(photos / "x", [(40, 30), (32, 32), (50, 80), (64, 64)])
    write_images(photos / "y", [(33, 47), (90, 41), (48, 48)], seed=3)
    embed_to_folder(encoder, photos, root / "index", batch_size=4, shard_size=3)
    return {"model": model, "photos": photos, "index": root / "index", "encoder": encoder}


def test_image_query_finds_itself_first(setup):
    index = load_index(setup["index"])
    assert len(index.paths) == 7 and index.vectors.dtype == np.float32
    query = setup["photos"] / "y" / "img01.jpg"
    hits = search(setup["encoder"], index, str(query), k=3)
    assert hits[0].path == query.resolve() or hits[0].path == query
    assert hits[0].score == pytest.approx(1.0, abs=2e-3)  # float16 storage
    assert [h.rank for h in hits] == [1, 2, 3]


def test_text_query_ranks_like_brute_force(setup):
    index = load_index(setup["index"])
    text = "due cerchi rossi su sfondo bianco"
    hits = search(setup["encoder"], index, text, k=5)
    scores = index.vectors @ setup["encoder"].encode_texts([text])[0]
    order = np.argsort(-scores, kind="stable")[:5]
    assert [h.path.name for h in hits] == [index.paths[i].split("/")[-1] for i in order]
    assert [h.score for h in hits] == pytest.approx(scores[order].tolist(), abs=1e-6)
    assert len(search(setup["encoder"], index, text, k=50)) == 7  # k capped by the index size


def test_cli_prints_rank_score_path_and_writes_html(setup, tmp_path):
    sheet = tmp_path / "sheets" / "results.html"
    result = runner.invoke(app, ["search", "un gatto", "--index", str(setup["index"]), "-k", "4",
                                 "--html", str(sheet)])  # the model comes from the index
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 4
    rank, score, path = lines[0].split("\t")
    assert rank == "1" and -1.0 <= float(score) <= 1.0 and path.endswith((".png", ".jpg"))
    page = sheet.read_text()
    links = re.findall(r'<img src="([^"]+)"', page)
    assert len(links) == 4 and all((sheet.parent / link).is_file() for link in links)


def test_errors(setup, tmp_path):
    with pytest.raises(DataError, match="not an embedded folder"):
        load_index(tmp_path)
    other = make_tiny_model(tmp_path / "other", seed=9)
    # Same architecture, another model: allowed (warned); an empty query is refused.
    with pytest.raises(DataError, match="query is empty"):
        run(EmbedConfig(index=setup["index"], model=str(other)), "  ")
    missing = runner.invoke(app, ["search", "x"])
    assert missing.exit_code == 2 and "no index folder given" in missing.stderr
