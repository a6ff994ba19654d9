"""`clipit search` over a folder made by `clipit embed --out`."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import urllib.parse

import numpy as np
import pytest
from typer.testing import CliRunner

from clipit.cli.main import app
from clipit.config.embed import EmbedConfig
from clipit.embed import embed_to_folder
from clipit.errors import DataError
from clipit.search import load_index, run, search
from tests.support import tiny_hf
from tests.support.images import write_images

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
    result = runner.invoke(
        app, ["search", "un gatto", "--index", str(setup["index"]), "-k", "4", "--html", str(sheet)]
    )  # the model comes from the index
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
    other = tiny_hf.save_tiny_dual_encoder(tmp_path / "other", seed=9)
    # Same architecture, another model: allowed (warned); an empty query is refused.
    with pytest.raises(DataError, match="query is empty"):
        run(EmbedConfig(index=setup["index"], model=str(other)), "  ")
    missing = runner.invoke(app, ["search", "x"])
    assert missing.exit_code == 2 and "no index folder given" in missing.stderr


def test_index_made_with_relative_paths_works_from_another_folder(tiny_model, tmp_path, monkeypatch):
    """The record holds the model's absolute path, not the relative one typed at embed time."""
    project = tmp_path / "project"
    write_images(project / "photos", [(40, 30), (32, 32), (50, 80)])
    shutil.copytree(tiny_model, project / "model")
    monkeypatch.chdir(project)
    made = runner.invoke(app, ["embed", "photos", "--model", "model", "--out", "index"])
    assert made.exit_code == 0, made.stderr
    assert json.loads((project / "index" / "embed.json").read_text())["model"] == str(
        (project / "model").resolve()
    )

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    found = runner.invoke(app, ["search", "un gatto", "--index", "../project/index", "-k", "2"])
    assert found.exit_code == 0, found.stderr
    assert "the index was built with" not in found.stderr  # its own model, recognised as such
    paths = [line.split("\t")[2] for line in found.stdout.splitlines()]
    assert len(paths) == 2 and all(os.path.isfile(p) and os.path.isabs(p) for p in paths)


@pytest.mark.parametrize("query", ["missing.jpg", "photos/missing.PNG"])
def test_a_missing_image_query_is_an_error_not_a_text(setup, query):
    result = runner.invoke(app, ["search", query, "--index", str(setup["index"])])
    assert result.exit_code == 2
    assert f"query image {query} does not exist" in result.stderr
    assert result.stdout == ""


def test_html_cannot_be_a_folder(setup, tmp_path):
    result = runner.invoke(
        app, ["search", "un gatto", "--index", str(setup["index"]), "--html", str(tmp_path)]
    )
    assert result.exit_code == 2 and "--html" in result.stderr and "is a folder" in result.stderr
    assert result.stdout == ""


def test_contact_sheet_links_cannot_become_javascript(tiny_model, encoder, tmp_path):
    """A file named `javascript:alert(1).png` next to the page is a link to that file, not a script."""
    photos = tmp_path / "photos"
    write_images(photos, [(40, 30), (32, 32), (50, 80)])
    names = ["javascript:alert(1).png", "a#b?c=1&d.jpg", "img02.png"]
    for source, name in zip(sorted(photos.iterdir()), names, strict=True):
        source.rename(photos / name)
    embed_to_folder(encoder, photos, tmp_path / "index", batch_size=4, shard_size=10)
    sheet = photos / "sheet.html"
    result = runner.invoke(
        app, ["search", "un gatto", "--index", str(tmp_path / "index"), "--html", str(sheet)]
    )
    assert result.exit_code == 0, result.stderr
    links = re.findall(r'(?:href|src)="([^"]+)"', sheet.read_text())
    assert len(links) == 6
    assert not [link for link in links if urllib.parse.urlsplit(html.unescape(link)).scheme]
    targets = {urllib.parse.unquote(urllib.parse.urlsplit(html.unescape(link)).path) for link in links}
    assert targets == set(names)  # each link, as a browser resolves it, is the image's own file
