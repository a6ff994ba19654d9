"""Every download refuses a source folder another run is writing: exit 2 naming the holder, after
reading its inputs and before fetching or writing anything."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from clipit.cli.main import app
from clipit.folder_lock import LOCK_NAME
from tests.data.sources.test_wit import FILE, wit_row, write_wit_tsv
from tests.support.folder_race import holding_process
from tests.support.image_server import jpeg_bytes

UNREACHABLE = "http://127.0.0.1:9/a.jpg"  # never fetched: the run stops at the lock


def cc3m_args(tmp_path):
    tsv = tmp_path / "cc3m.tsv"
    tsv.write_text(f"a cat on a couch\t{UNREACHABLE}\n", encoding="utf-8")
    return ["download", "cc3m", "--tsv", str(tsv)]


def wit_args(tmp_path):
    tsv = write_wit_tsv(tmp_path / FILE, [wit_row("it", UNREACHABLE, "Un gatto sul divano")])
    return ["download", "wit", "--tsv", str(tsv), "--lang", "it"]


def mscoco_args(tmp_path):
    images = tmp_path / "coco"
    images.mkdir()
    (images / "COCO_val2014_000000000042.jpg").write_bytes(jpeg_bytes(40, 30, "42"))
    annotations = tmp_path / "captions_ita.json"
    annotations.write_text(json.dumps({
        "images": [{"id": 42, "file_name": "COCO_val2014_000000000042.jpg"}],
        "annotations": [{"image_id": "42", "id": 1, "caption": "Un gatto."}],
    }))  # fmt: skip
    return ["download", "mscoco-it", "--annotations", str(annotations), "--images", str(images)]


@pytest.mark.parametrize("make_args", [cc3m_args, wit_args, mscoco_args])
def test_a_download_into_a_folder_being_written_is_refused(tmp_path, make_args):
    out = tmp_path / "source"
    args = [*make_args(tmp_path), "--out", str(out)]
    with holding_process(out, "download cc3m") as holder:
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: clipit download cc3m (pid {holder.pid} on "), (
        result.stderr
    )
    assert f"is already writing to {out}" in lines[0]
    assert [p.name for p in out.iterdir()] == [LOCK_NAME]  # nothing fetched, nothing written
    result = CliRunner().invoke(app, args)  # the holder is gone: the same command runs
    assert result.exit_code == 0, result.output
    assert (out / "manifest.parquet").is_file()
