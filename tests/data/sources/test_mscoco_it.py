"""`clipit download mscoco-it`: COCO-format Italian captions over a local images folder or COCO URLs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from typer.testing import CliRunner

from clipit.cli.main import app
from tests.data.sources.helpers import image_of, rows_by_key, summary_of
from tests.support.image_server import fast_download_args, jpeg_bytes

runner = CliRunner()


def write_json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def italian_and_english(tmp_path: Path, urls: dict[int, str] | None = None) -> tuple[Path, Path, Path]:
    """Two Italian files in MSCOCO-IT's validated style (string image_id, int images[].id) and COCO's English."""
    urls = urls or {}

    def image(i: int, name: str) -> dict:
        entry = {"id": i, "file_name": name, "width": 1, "height": 1}
        return {**entry, "coco_url": urls[i]} if i in urls else entry

    first = write_json(
        tmp_path / "captions_ita_a.json",
        {
            "images": [
                image(42, "COCO_val2014_000000000042.jpg"),
                image(73, "COCO_val2014_000000000073.jpg"),
            ],
            "annotations": [
                {"image_id": "42", "id": 1001, "caption": "Un gatto  sul divano."},
                {"image_id": "73", "id": 555, "caption": "Una strada di città."},
                {"image_id": "42", "id": 1002, "caption": "Un gatto che dorme."},
                {"image_id": "99", "id": 7, "caption": "Un'immagine rovinata."},
            ],
        },
    )
    second = write_json(
        tmp_path / "captions_ita_b.json",
        {
            "images": [image(123, "COCO_val2014_000000000123.jpg")],
            "annotations": [{"image_id": "123", "id": 8, "caption": "Un cane."}],
        },
    )
    english = write_json(
        tmp_path / "captions_en.json",
        {
            "annotations": [
                {"image_id": 42, "id": 1002, "caption": "A cat sleeping."},
                {"image_id": 42, "id": 1001, "caption": "A cat on the couch."},
                {"image_id": 73, "id": 9000, "caption": "A city street."},  # other id: matched by position
            ]
        },
    )
    return first, second, english


def test_local_images_are_referenced_in_place_with_english_captions_matched(tmp_path):
    images = tmp_path / "coco" / "val2014"
    images.mkdir(parents=True)
    (images / "COCO_val2014_000000000042.jpg").write_bytes(jpeg_bytes(100, 80, "42"))
    (images / "000000000073.jpg").write_bytes(jpeg_bytes(60, 60, "73"))  # 2017-style name: found by its id
    (images / "COCO_val2014_000000000099.jpg").write_bytes(b"not a jpeg")
    first, second, english = italian_and_english(tmp_path)
    out = tmp_path / "sources" / "mscoco-it"

    result = runner.invoke(
        app,
        ["download", "mscoco-it", "--annotations", str(first), str(second), "--annotations-en", str(english)]
        + ["--images", str(tmp_path / "coco"), "--out", str(out)],
    )

    assert result.exit_code == 0, result.output
    assert result.stdout == f"{out / 'manifest.parquet'}\n"
    rows = rows_by_key(out)
    assert {k: (r["caption"], r["caption_en"], r["status"]) for k, r in rows.items()} == {
        "mscoco-it/42/0": ("Un gatto sul divano.", "A cat on the couch.", "ok"),
        "mscoco-it/73/0": ("Una strada di città.", "A city street.", "ok"),
        "mscoco-it/42/1": ("Un gatto che dorme.", "A cat sleeping.", "ok"),
        "mscoco-it/99/0": ("Un'immagine rovinata.", None, "failed"),
        "mscoco-it/123/0": ("Un cane.", None, "failed"),
    }
    assert json.loads(rows["mscoco-it/42/0"]["meta"])["caption_en_match"] == "id"
    assert json.loads(rows["mscoco-it/73/0"]["meta"])["caption_en_match"] == "order"
    assert rows["mscoco-it/99/0"]["error"].startswith("not a readable image")
    assert rows["mscoco-it/123/0"]["error"] == f"image file not found under {tmp_path / 'coco'}"
    for key, (name, size) in {
        "mscoco-it/42/0": ("COCO_val2014_000000000042.jpg", (100, 80)),
        "mscoco-it/73/0": ("000000000073.jpg", (60, 60)),
    }.items():
        row = rows[key]
        assert row["index"] is None and not Path(row["shard"]).is_absolute()
        assert (out / row["shard"]).resolve() == (images / name).resolve()
        assert (row["width"], row["height"]) == size == image_of(out, row).size
        assert row["image_sha256"] == hashlib.sha256((images / name).read_bytes()).hexdigest()
    assert rows["mscoco-it/42/0"]["split"] == rows["mscoco-it/42/1"]["split"]  # one image, one split
    assert all(r["lang"] == "it" and r["source"] == "mscoco-it" for r in rows.values())
    assert summary_of(out)["failed"] == 2


def test_without_images_folder_the_coco_urls_are_downloaded_once_per_image(tmp_path, image_server):
    urls = {42: image_server.url("ok/300x200/42.jpg"), 73: image_server.url("missing/73.jpg")}
    first, _, _ = italian_and_english(tmp_path, urls)
    out = tmp_path / "mscoco-it"

    result = runner.invoke(
        app, ["download", "mscoco-it", "--annotations", str(first), "--out", str(out), *fast_download_args()]
    )

    assert result.exit_code == 0, result.output
    rows = rows_by_key(out)
    assert [rows[f"mscoco-it/42/{n}"]["status"] for n in (0, 1)] == ["ok", "ok"]
    assert rows["mscoco-it/42/0"]["index"] == rows["mscoco-it/42/1"]["index"] is not None
    assert image_of(out, rows["mscoco-it/42/0"]).size == (300, 200)  # smaller than 256: never upscaled
    assert (rows["mscoco-it/73/0"]["status"], rows["mscoco-it/73/0"]["error"]) == (
        "failed",
        "download: HTTP Error 404: Not Found",
    )
    assert (rows["mscoco-it/99/0"]["status"], rows["mscoco-it/99/0"]["error"]) == ("failed", "no image URL")
    assert sorted(image_server.paths()) == ["/missing/73.jpg", "/ok/300x200/42.jpg"]


def test_bad_annotation_files_are_one_line_naming_file_and_place_exit_2(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"annotations": [\n  {"image_id": 1,, "caption": "x"}]}', encoding="utf-8")
    wrong_id = write_json(tmp_path / "wrong_id.json", {"annotations": [{"image_id": "abc", "caption": "x"}]})
    no_list = write_json(tmp_path / "no_list.json", {"images": []})
    cases = {
        broken: f"error: {broken}: invalid JSON at line 2 column 18",
        wrong_id: f"error: {wrong_id}: annotations[0].image_id = 'abc' is not an image id",
        no_list: f"error: {no_list}: no 'annotations' list",
        tmp_path / "absent.json": f"error: annotation file {tmp_path / 'absent.json'} does not exist",
    }
    for path, expected in cases.items():
        out = tmp_path / "out"
        result = runner.invoke(
            app,
            [
                "download",
                "mscoco-it",
                "--annotations",
                str(path),
                "--images",
                str(tmp_path),
                "--out",
                str(out),
            ],
        )
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith(expected), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert not out.exists()
