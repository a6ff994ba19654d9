"""The JSON API of `clipit serve`, against a real uvicorn server on a loopback port."""

from __future__ import annotations

import base64
import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from clipit.cli.main import app as cli
from clipit.search import load_index, search
from clipit.serve.classify import GRID

runner = CliRunner()


def png(width: int, height: int, colour=(120, 60, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format="PNG")
    return out.getvalue()


def test_health_answers_once_loaded(server, http):
    answer = http.get(server.url + "/api/health")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok" and answer.json()["images"] == 9


def test_text_search_returns_clipit_search_hits_in_order(server, http, served_index):
    query = "un quadrato rosso su sfondo bianco"
    result = runner.invoke(cli, ["search", query, "--index", str(served_index["index"]), "-k", "5"])
    assert result.exit_code == 0, result.output
    printed = [line.split("\t") for line in result.stdout.strip().splitlines()]
    answer = http.get(server.url + "/api/search", params={"q": query, "k": 5})
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert [r["rank"] for r in results] == [1, 2, 3, 4, 5]
    assert [r["path"] for r in results] == [p[2] for p in printed]
    assert [round(r["score"], 4) for r in results] == pytest.approx([float(p[1]) for p in printed], abs=2e-4)
    for hit in results:  # each url serves the very file at `path`
        image = http.get(server.url + hit["url"])
        assert image.status_code == 200 and image.content == open(hit["path"], "rb").read()


def test_image_upload_search_finds_the_image_first(server, http, served_index, encoder):
    picture = served_index["photos"] / "y" / "img01.jpg"
    answer = http.post(server.url + "/api/search", files={"image": picture.read_bytes()}, data={"k": "4"})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    expected = search(encoder, load_index(served_index["index"]), str(picture), k=4)
    assert [r["path"] for r in results] == [str(h.path) for h in expected]
    assert results[0]["path"].endswith("y/img01.jpg") and results[0]["score"] == pytest.approx(1.0, abs=2e-3)


def test_classify_gives_probabilities_and_a_heatmap(server, http, served_index):
    picture = (served_index["photos"] / "plain" / "rosso.png").read_bytes()
    labels = ["un quadrato rosso", "un cerchio blu", "un gatto"]
    answer = http.post(
        server.url + "/api/classify", files={"image": picture}, data={"labels": "\n".join(labels)}
    )
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert sorted(r["label"] for r in results) == sorted(labels)
    probabilities = [r["probability"] for r in results]
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-5) and probabilities == sorted(
        probabilities, reverse=True
    )
    for r in results:
        heat = np.array(r["heatmap"])
        assert heat.shape == (GRID, GRID) and heat.min() >= 0 and heat.max() <= 1


def test_classify_labels_must_be_two_or_more(server, http):
    answer = http.post(
        server.url + "/api/classify", files={"image": png(32, 32)}, data={"labels": "solo uno"}
    )
    assert answer.status_code == 400 and "labels" in answer.json()["detail"]


def test_knn_service_answers_like_clip_retrieval_back(server, http, served_index):
    assert http.get(server.url + "/indices-list").json() == ["clipit"]
    query = {"text": "un cerchio blu", "modality": "image", "num_images": 4, "indice_name": "clipit"}
    answer = http.post(server.url + "/knn-service", json=query)
    assert answer.status_code == 200, answer.text
    knn = answer.json()
    api = http.get(server.url + "/api/search", params={"q": "un cerchio blu", "k": 4}).json()["results"]
    assert [r["image_path"] for r in knn] == [r["path"] for r in api]
    assert [r["similarity"] for r in knn] == pytest.approx([r["score"] for r in api], abs=1e-5)
    index = load_index(served_index["index"])
    assert [str(index.root / index.paths[r["id"]]) for r in knn] == [r["image_path"] for r in knn]
    assert http.get(knn[0]["url"]).content == open(knn[0]["image_path"], "rb").read()
    metadata = http.post(
        server.url + "/metadata", json={"ids": [knn[0]["id"]], "indice_name": "clipit"}
    ).json()
    assert metadata[0]["metadata"]["image_path"] == knn[0]["image_path"]

    picture = served_index["photos"] / "x" / "img02.png"
    by_image = {
        "image": base64.b64encode(picture.read_bytes()).decode(),
        "modality": "image",
        "num_images": 2,
        "indice_name": "clipit",
    }
    first = http.post(server.url + "/knn-service", json=by_image).json()[0]
    assert first["image_path"].endswith("x/img02.png") and first["similarity"] == pytest.approx(1, abs=2e-3)


@pytest.mark.parametrize(
    "query, field",
    [
        ({"text": "x", "modality": "text", "num_images": 2, "indice_name": "clipit"}, "modality"),
        ({"text": "x", "modality": "image", "num_images": 2, "indice_name": "laion5B"}, "indice_name"),
        (
            {
                "image_url": "http://169.254.169.254/latest",
                "modality": "image",
                "num_images": 2,
                "indice_name": "clipit",
            },
            "image_url",
        ),
        ({"modality": "image", "num_images": 2, "indice_name": "clipit"}, "no query"),
    ],
)
def test_knn_service_refuses_what_it_cannot_answer(server, http, query, field):
    answer = http.post(server.url + "/knn-service", json=query)
    assert answer.status_code == 400 and field in answer.json()["detail"]


def test_concurrent_searches_share_forward_passes(server, http):
    before = http.get(server.url + "/api/health").json()
    queries = [f"immagine numero {i}" for i in range(12)]

    def ask(q):
        import requests

        return requests.get(server.url + "/api/search", params={"q": q, "k": 2}, timeout=60).status_code

    with ThreadPoolExecutor(len(queries)) as pool:
        assert list(pool.map(ask, queries)) == [200] * len(queries)
    after = http.get(server.url + "/api/health").json()
    assert after["encoded_items"] - before["encoded_items"] == len(queries)
    assert after["encoder_calls"] - before["encoder_calls"] < len(queries)  # batched, not one by one


def test_bad_requests_are_4xx(server, http):
    assert http.get(server.url + "/api/search", params={"q": "  "}).status_code == 400
    assert http.get(server.url + "/api/search", params={"q": "gatto", "k": 0}).status_code == 422
    assert http.get(server.url + "/api/search").status_code == 422
    answer = http.post(server.url + "/api/search", files={"image": b"\xff\xd8\xff\xe0 not a jpeg"})
    assert answer.status_code == 400 and "readable" in answer.json()["detail"]
    assert http.get(server.url + "/api/health").status_code == 200
