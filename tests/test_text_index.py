"""`clipit embed --text FILE --out DIR`: text_emb/ shards in clip-retrieval's layout, resumed by shard."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from clipit import text_index
from clipit.cli.main import app
from clipit.errors import DataError
from clipit.search import load_index
from tests.support.images import write_images

runner = CliRunner()
TEXTS = ["un gatto rosso", "due cani", "una foto di montagna", "il mare d'inverno", "tre biciclette"]


def embed_texts(model, text_file, out, *extra):
    result = runner.invoke(
        app,
        [
            "embed",
            "--text",
            str(text_file),
            "--model",
            str(model),
            "--out",
            str(out),
            "--shard-size",
            "2",
            *extra,
        ],
    )
    assert result.exit_code == 0, result.stderr
    return result


def test_texts_written_as_clip_retrieval_writes_them(tiny_model, encoder, tmp_path):
    text_file = tmp_path / "captions.txt"
    text_file.write_text("".join(f"{t}\n" for t in TEXTS), encoding="utf-8")
    out = tmp_path / "index"
    embed_texts(tiny_model, text_file, out)
    assert sorted(p.name for p in (out / "text_emb").iterdir()) == [f"text_emb_000{i}.npy" for i in range(3)]
    assert not (out / "img_emb").exists()
    record = json.loads((out / "embed.json").read_text())
    assert record["kind"] == "text" and record["root"] == str(text_file.resolve()) and record["files"] == 5

    vectors, texts, _ = text_index.read(out)
    assert texts == TEXTS and vectors.shape == (5, encoder.dim)
    np.testing.assert_allclose(vectors, encoder.encode_texts(TEXTS), atol=2e-3)  # float16 storage

    # clip-retrieval's reader (embedding-reader, what autofaiss and clip_back's tools use) reads it back.
    from embedding_reader import EmbeddingReader

    reader = EmbeddingReader(
        str(out / "text_emb"),
        file_format="parquet_npy",
        metadata_folder=str(out / "metadata"),
        meta_columns=["caption"],
    )
    assert reader.count == 5 and reader.dimension == encoder.dim
    read = [(emb, meta) for emb, meta in reader(batch_size=10, start=0, end=reader.count)]
    assert read[0][1]["caption"].tolist() == TEXTS
    np.testing.assert_allclose(read[0][0], vectors, atol=1e-6)

    # A changed line re-embeds its shard only; an image search refuses a text folder.
    kept = out / "metadata" / "metadata_0000.parquet"
    before = kept.stat().st_mtime_ns
    text_file.write_text(
        "".join(f"{t}\n" for t in [*TEXTS[:2], "una foto di collina", *TEXTS[3:]]), encoding="utf-8"
    )
    again = embed_texts(tiny_model, text_file, out)
    assert "1 shard(s) no longer match" in " ".join(again.stderr.split())
    assert kept.stat().st_mtime_ns == before
    assert pq.read_table(out / "metadata" / "metadata_0001.parquet").column("caption").to_pylist() == [
        "una foto di collina",
        "il mare d'inverno",
    ]
    with pytest.raises(DataError, match="holds text embeddings"):
        load_index(out)


def test_image_folders_stay_readable_by_clip_retrievals_reader(tiny_model, tmp_path):
    photos = tmp_path / "photos"
    write_images(photos, [(24, 24), (30, 20), (26, 28)])
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
            "2",
            "--ann-threshold",
            "0",
        ],
    )  # the ANN file beside them too
    assert made.exit_code == 0, made.stderr
    from embedding_reader import EmbeddingReader

    reader = EmbeddingReader(
        str(out / "img_emb"),
        file_format="parquet_npy",
        metadata_folder=str(out / "metadata"),
        meta_columns=["image_path"],
    )
    embeddings, meta = next(iter(reader(batch_size=10, start=0, end=reader.count)))
    assert meta["image_path"].tolist() == ["img00.png", "img01.jpg", "img02.png"]
    np.testing.assert_allclose(embeddings, load_index(out).vectors, atol=1e-6)


def test_a_text_folder_is_not_resumed_as_an_image_folder(tiny_model, tmp_path):
    text_file = tmp_path / "captions.txt"
    text_file.write_text("uno\ndue\n", encoding="utf-8")
    out = tmp_path / "index"
    embed_texts(tiny_model, text_file, out)
    write_images(tmp_path / "photos", [(24, 24)])
    mixed = runner.invoke(
        app,
        [
            "embed",
            str(tmp_path / "photos"),
            "--model",
            str(tiny_model),
            "--out",
            str(out),
            "--shard-size",
            "2",
        ],
    )
    assert mixed.exit_code == 2 and "made differently (kind, root differ)" in " ".join(mixed.stderr.split())
    assert not (out / "img_emb").exists()
