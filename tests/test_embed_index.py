"""`clipit embed --out`: a rerun after the image folder changed re-embeds exactly what changed."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow.parquet as pq
from typer.testing import CliRunner

from clipit.cli.main import app
from clipit.folder_lock import LOCK_NAME
from tests.support.folder_race import holding_process
from tests.support.images import write_corrupt, write_images

runner = CliRunner()


def listing(out):
    return [
        r
        for m in sorted((out / "metadata").glob("*.parquet"))
        for r in pq.read_table(m).column("image_path").to_pylist()
    ]


def test_rerun_after_the_folder_changed(tiny_model, encoder, tmp_path):
    photos = tmp_path / "photos"
    write_images(photos, [(24, 24), (30, 20), (26, 28), (40, 22), (22, 36), (32, 32)])  # img00..img05
    out = tmp_path / "index"
    args = ["embed", str(photos), "--model", str(tiny_model), "--out", str(out), "--shard-size", "2"]
    assert runner.invoke(app, args).exit_code == 0
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "metadata").iterdir()}

    # Same file count, other files: img05 deleted and img06 added (shard 2), img01 rewritten (shard 0).
    (photos / "img05.jpg").unlink()
    write_images(photos / "new", [(28, 28)], seed=7)
    (photos / "new" / "img00.png").rename(photos / "img06.png")
    write_images(photos / "other", [(30, 20)], seed=8)
    os.replace(photos / "other" / "img00.png", photos / "img01.jpg")
    (photos / "other").rmdir()
    (photos / "new").rmdir()
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.stderr
    assert "2 shard(s) no longer match" in " ".join(again.stderr.split())

    current = sorted(p for p in photos.iterdir())
    assert listing(out) == [p.name for p in current]
    vectors = np.concatenate([np.load(p) for p in sorted((out / "img_emb").glob("*.npy"))])
    np.testing.assert_allclose(vectors, encoder.encode_images(current, batch_size=4).vectors, atol=2e-3)
    kept = out / "metadata" / "metadata_0001.parquet"
    assert kept.stat().st_mtime_ns == mtimes[kept.name]  # shard 1 (img02, img03) did not change: kept

    # Fewer files: the shards past the end go, the record follows.
    for name in ("img04.png", "img06.png"):
        (photos / name).unlink()
    assert runner.invoke(app, args).exit_code == 0
    assert sorted(p.name for p in (out / "img_emb").iterdir()) == ["img_emb_0000.npy", "img_emb_0001.npy"]
    assert listing(out) == ["img00.png", "img01.jpg", "img02.png", "img03.jpg"]
    assert json.loads((out / "embed.json").read_text())["files"] == 4


def test_failed_list_keeps_one_line_per_file(tiny_model, tmp_path):
    photos = tmp_path / "photos"
    write_images(photos, [(24, 24)])
    write_corrupt(photos / "bad\nname.jpg")
    write_corrupt(photos / "tab\tand\\slash.jpg")
    out = tmp_path / "index"
    result = runner.invoke(app, ["embed", str(photos), "--model", str(tiny_model), "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    lines = (out / "failed" / "failed_0000.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["bad\\nname.jpg", "tab\\tand\\\\slash.jpg"]
    assert all(len(line.split("\t")) == 2 for line in lines)
    assert "1 vectors in 1 shards" in " ".join(result.stderr.split()) and "2 unreadable" in result.stderr


def test_a_folder_another_run_is_writing_is_refused(tiny_model, tmp_path):
    photos = tmp_path / "photos"
    write_images(photos, [(24, 24)])
    out = tmp_path / "index"
    args = ["embed", str(photos), "--model", str(tiny_model), "--out", str(out)]
    with holding_process(out, "embed") as holder:
        busy = runner.invoke(app, args)
    assert busy.exit_code == 2, busy.stderr
    assert (
        f"clipit embed (pid {holder.pid} on " in busy.stderr and f"is already writing to {out}" in busy.stderr
    )
    assert [p.name for p in out.iterdir()] == [LOCK_NAME]  # nothing written
    free = runner.invoke(app, args)  # the holder is gone: the same command runs
    assert free.exit_code == 0, free.stderr
    assert len(listing(out)) == 1
