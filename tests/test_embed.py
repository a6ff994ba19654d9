"""`clipit embed`: stdout .npy, --paths-out, --text, terminal refusal, --out folders and their resume."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from clipit.cli.main import app
from clipit.embed import refuse_terminal
from clipit.errors import ClipitError
from tests.support.images import write_corrupt, write_images
from tests.support.torch_reference import TorchReference

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
    return [
        p
        for p in sorted(photos.rglob("*"), key=lambda p: p.relative_to(photos).as_posix())
        if p.suffix in (".png", ".jpg") and p.name != "broken.jpg"
    ]


def test_stdout_npy_equals_encoder_and_pytorch(model, encoder, photos, tmp_path):
    rows_file = tmp_path / "rows.txt"
    result = runner.invoke(
        app, ["embed", str(photos), "--model", str(model), "--paths-out", str(rows_file), "--batch-size", "4"]
    )
    assert result.exit_code == 0, result.stderr
    vectors = np.load(io.BytesIO(result.stdout_bytes), allow_pickle=False)
    expected_paths = readable(photos)
    assert rows_file.read_text().splitlines() == [p.relative_to(photos).as_posix() for p in expected_paths]
    assert rows_file.read_text().splitlines()[0] == "a/y00.png"
    assert vectors.dtype == np.float32 and vectors.shape == (5, encoder.dim)
    np.testing.assert_allclose(
        vectors, encoder.encode_images(expected_paths, batch_size=4).vectors, atol=1e-6
    )
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
        (["--text", "t.txt", "--paths-out", "p"], "--paths-out is for image folders"),
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
            stdout=follower,
            stderr=subprocess.PIPE,
            env=ENV,
            timeout=120,
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
    args = [
        "embed",
        str(photos),
        "--model",
        str(model),
        "--out",
        str(out),
        "--shard-size",
        "2",
        "--batch-size",
        "4",
    ]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.stderr
    assert first.stdout.strip() == str(out)
    shards = sorted(p.name for p in (out / "img_emb").iterdir())
    assert shards == ["img_emb_0000.npy", "img_emb_0001.npy", "img_emb_0002.npy"]  # 6 files, 2 per shard
    paths = [
        r
        for m in sorted((out / "metadata").glob("*.parquet"))
        for r in pq.read_table(m).column("image_path").to_pylist()
    ]
    vectors = np.concatenate([np.load(out / "img_emb" / s) for s in shards])
    assert vectors.dtype == np.float16
    expected = readable(photos)
    assert paths == [p.relative_to(photos).as_posix() for p in expected]
    np.testing.assert_allclose(vectors, encoder.encode_images(expected, batch_size=4).vectors, atol=2e-3)
    assert (out / "failed" / "failed_0000.tsv").read_text().startswith("a/broken.jpg\t")
    assert (out / "config.resolved.toml").is_file() and json.loads((out / "embed.json").read_text())[
        "files"
    ] == 6

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
    args = [
        "embed",
        str(photos),
        "--model",
        str(model),
        "--out",
        str(out),
        "--shard-size",
        "1",
        "--batch-size",
        "1",
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "clipit.cli.main", *args],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
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


def test_no_readable_image_is_an_error(model, tmp_path):
    """Every file unreadable: exit 2 and no .npy (stream mode), exit 2 after recording the failures (--out)."""
    broken = tmp_path / "broken"
    write_corrupt(broken / "a.jpg")
    write_corrupt(broken / "b.jpg")
    stream = runner.invoke(app, ["embed", str(broken), "--model", str(model)])
    assert stream.exit_code == 2 and "none of the 2 image files" in stream.stderr
    assert stream.stdout_bytes == b""
    out = tmp_path / "index"
    folder = runner.invoke(app, ["embed", str(broken), "--model", str(model), "--out", str(out)])
    assert folder.exit_code == 2 and "none of the 2 image files" in folder.stderr
    assert (out / "failed" / "failed_0000.tsv").read_text().count("\n") == 2


def test_paths_out_refuses_a_name_with_a_line_break(model, tmp_path):
    """Before any work: no vectors on stdout, no paths file (its lines would go out of step)."""
    photos = tmp_path / "photos"
    write_images(photos, [(24, 24), (30, 20)])
    (photos / "img00.png").rename(photos / "two\nlines.png")
    rows_file = tmp_path / "rows.txt"
    result = runner.invoke(app, ["embed", str(photos), "--model", str(model), "--paths-out", str(rows_file)])
    assert result.exit_code == 2, result.stderr
    assert "'two\\nlines.png' holds a line break" in result.stderr
    assert result.stdout_bytes == b"" and not rows_file.exists()
    # Without --paths-out nothing is out of step: both images are rows.
    plain = runner.invoke(app, ["embed", str(photos), "--model", str(model)])
    assert plain.exit_code == 0, plain.stderr
    assert np.load(io.BytesIO(plain.stdout_bytes)).shape[0] == 2


@pytest.mark.parametrize(
    ("option", "target", "message"),
    [
        ("--paths-out", "FOLDER", "is a folder"),
        ("--paths-out", "/proc/self/rows.txt", "cannot write in /proc/self"),
        ("--paths-out", "FILE/rows.txt", "is a file, not a folder"),
        ("--out", "FILE", "is not a folder"),
        ("--out", "/proc/self/index", "cannot write in /proc/self"),
    ],
)
def test_unwritable_outputs_fail_before_any_work(model, photos, tmp_path, option, target, message):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("kept\n")
    target = target.replace("FOLDER", str(tmp_path / "folder")).replace("FILE", str(tmp_path / "file"))
    result = runner.invoke(app, ["embed", str(photos), "--model", str(model), option, target])
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr and option in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout_bytes == b"" and "encoding" not in result.stderr  # nothing was embedded
    assert (tmp_path / "file").read_text() == "kept\n" and not any((tmp_path / "folder").iterdir())


def test_a_fifo_named_like_an_image_is_skipped(model, tmp_path):
    """Opening a FIFO blocks until a writer comes: the listing must leave it out, not hang on it."""
    photos = tmp_path / "photos"
    write_images(photos, [(24, 24), (30, 20)])
    fifo = photos / "pipe.jpg"
    os.mkfifo(fifo)
    rows_file = tmp_path / "rows.txt"
    outcome = {}
    worker = threading.Thread(
        target=lambda: outcome.update(
            result=runner.invoke(
                app, ["embed", str(photos), "--model", str(model), "--paths-out", str(rows_file)]
            )
        ),
        daemon=True,
    )
    worker.start()
    worker.join(120)
    hung = worker.is_alive()
    if hung:  # unblock the reader (it sees end of file) so the test ends instead of hanging
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(60)
    assert not hung, "clipit embed blocked on a FIFO"
    result = outcome["result"]
    assert result.exit_code == 0, result.stderr
    assert "pipe.jpg: not a regular file" in " ".join(result.stderr.split())
    assert rows_file.read_text().splitlines() == ["img00.png", "img01.jpg"]
