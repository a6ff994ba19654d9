"""`clipit embed`: stdout .npy, --paths-out, --text, terminal refusal, --out folders and their resume."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from clipit.cli.main import app
from clipit.embed import refuse_terminal
from clipit.errors import ClipitError
from tests.eval.fixtures import TorchReference, write_corrupt, write_images

runner = CliRunner()
ENV = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Nested folders, mixed formats, one corrupt file and one non-image file."""
    root = tmp_path_factory.mktemp("photos")
    write_images(root / "b", [(40, 30), (32, 32)], prefix="x")
    write_images(root / "a", [(50, 80), (64, 64), (33, 47)], seed=1, prefix="y")
    write_corrupt(root / "a" / "broken.jpg")
    (root / "readme.txt").write_text("not an image")
    return root


def readable(photos):
    return [p for p in sorted(photos.rglob("*"), key=lambda p: p.relative_to(photos).as_posix())
            if p.suffix in (".png", ".jpg") and p.name != "broken.jpg"]


def test_stdout_npy_equals_encoder_and_pytorch(model, encoder, photos, tmp_path):
    rows_file = tmp_path / "rows.txt"
    result = runner.invoke(app, ["embed", str(photos), "--model", str(model), "--paths-out", str(rows_file),
                                 "--batch-size", "4"])
    assert result.exit_code == 0, result.stderr
    vectors = np.load(io.BytesIO(result.stdout_bytes), allow_pickle=False)
    expected_paths = readable(photos)
    assert rows_file.read_text().splitlines() == [p.relative_to(photos).as_posix() for p in expected_paths]
    assert rows_file.read_text().splitlines()[0] == "a/y00.png"
    assert vectors.dtype == np.float32 and vectors.shape == (5, encoder.dim)
    np.testing.assert_allclose(vectors, encoder.encode_images(expected_paths, batch_size=4).vectors, atol=1e-6)
    np.testing.assert_allclose(vectors, TorchReference(model).images(expected_paths), atol=1e-5)
    assert "broken.jpg" in result.stderr  # warned about, and left out of the rows


def test_text_file(model, encoder, tmp_path):
    texts = ["un gatto rosso", "due cerchi blu su sfondo nero", "una casa"]
    text_file = tmp_path / "texts.txt"
    text_file.write_text("\n".join(texts) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["embed", "--text", str(text_file), "--model", str(model)])
    assert result.exit_code == 0, result.stderr
    vectors = np.load(io.BytesIO(result.stdout_bytes))
    np.testing.assert_allclose(vectors, encoder.encode_texts(texts), atol=1e-6)
    text_file.write_text("uno\n\ntre\n")
    blank = runner.invoke(app, ["embed", "--text", str(text_file), "--model", str(model)])
    assert blank.exit_code == 2 and "texts.txt:2 is blank" in blank.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give either an image folder"),
        (["PHOTOS", "--text", "t.txt"], "not both"),
        (["--text", "t.txt", "--out", "o"], "--out and --paths-out are for image folders"),
        (["PHOTOS"], "no model given"),
    ],
)
def test_bad_input(photos, args, message):
    result = runner.invoke(app, ["embed", *[str(photos) if a == "PHOTOS" else a for a in args]])
    assert result.exit_code == 2 and message in result.stderr


@pytest.mark.slow
def test_refuses_a_terminal(model, photos):
    leader, follower = os.openpty()
    try:
        with os.fdopen(os.dup(follower), "w") as terminal, pytest.raises(ClipitError, match="terminal"):
            refuse_terminal(terminal)
        # The real command, its stdout a pseudo-terminal: exit 2 before loading anything, nothing written.
        process = subprocess.run(
            [sys.executable, "-m", "clipit.cli.main", "embed", str(photos), "--model", str(model)],
            stdout=follower, stderr=subprocess.PIPE, env=ENV, timeout=120,
        )
        os.set_blocking(leader, False)
        try:
            written = os.read(leader, 1 << 16)
        except BlockingIOError:
            written = b""
    finally:
        os.close(follower)
        os.close(leader)
    assert process.returncode == 2
    assert b"refusing to write binary" in process.stderr
    assert b"NUMPY" not in written


def test_out_folder_layout_and_resume(model, encoder, photos, tmp_path):
    out = tmp_path / "index"
    args = ["embed", str(photos), "--model", str(model), "--out", str(out), "--shard-size", "2", "--batch-size", "4"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.stderr
    assert first.stdout.strip() == str(out)
    shards = sorted(p.name for p in (out / "img_emb").iterdir())
    assert shards == ["img_emb_0000.npy", "img_emb_0001.npy", "img_emb_0002.npy"]  # 6 files, 2 per shard
    paths = [r for m in sorted((out / "metadata").glob("*.parquet"))
             for r in pq.read_table(m).column("image_path").to_pylist()]
    vectors = np.concatenate([np.load(out / "img_emb" / s) for s in shards])
    assert vectors.dtype == np.float16
    expected = readable(photos)
    assert paths == [p.relative_to(photos).as_posix() for p in expected]
    np.testing.assert_allclose(vectors, encoder.encode_images(expected, batch_size=4).vectors, atol=2e-3)
    assert (out / "failed" / "failed_0000.tsv").read_text().startswith("a/broken.jpg\t")
    assert (out / "config.resolved.toml").is_file() and json.loads((out / "embed.json").read_text())["files"] == 6

    # Interrupted before shard 1's metadata: a rerun redoes shard 1 only.
    before = {p.name: p.stat().st_mtime_ns for p in (out / "img_emb").iterdir()}
    shard1 = np.load(out / "img_emb" / "img_emb_0001.npy")
    (out / "metadata" / "metadata_0001.parquet").unlink()
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.stderr
    after = {p.name: p.stat().st_mtime_ns for p in (out / "img_emb").iterdir()}
    assert after["img_emb_0000.npy"] == before["img_emb_0000.npy"]
    assert after["img_emb_0002.npy"] == before["img_emb_0002.npy"]
    assert after["img_emb_0001.npy"] != before["img_emb_0001.npy"]
    np.testing.assert_array_equal(np.load(out / "img_emb" / "img_emb_0001.npy"), shard1)

    changed = runner.invoke(app, [*args[:-4], "--shard-size", "3"])
    assert changed.exit_code == 2 and "shard_size" in changed.stderr


@pytest.mark.slow
def test_kill_then_resume(model, encoder, tmp_path):
    """kill -9 in the middle of `clipit embed --out`, then the same command: finished shards are kept."""
    photos = tmp_path / "many"
    write_images(photos, [(24, 24)] * 150)
    out = tmp_path / "index"
    args = ["embed", str(photos), "--model", str(model), "--out", str(out), "--shard-size", "1", "--batch-size", "1"]
    process = subprocess.Popen([sys.executable, "-m", "clipit.cli.main", *args], env=ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and len(list((out / "metadata").glob("*.parquet"))) < 5:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = {p.name: p.stat().st_mtime_ns for p in (out / "metadata").glob("*.parquet")}
    assert 5 <= len(done_before) < 150, "the run must be killed in the middle"

    resumed = runner.invoke(app, args)
    assert resumed.exit_code == 0, resumed.stderr
    for name, mtime in done_before.items():
        assert (out / "metadata" / name).stat().st_mtime_ns == mtime  # not redone
    vectors = np.concatenate([np.load(p) for p in sorted((out / "img_emb").glob("*.npy"))])
    expected = encoder.encode_images(sorted(photos.iterdir()), batch_size=8).vectors
    np.testing.assert_allclose(vectors, expected, atol=2e-3)
    assert not list(out.rglob("*.tmp"))
