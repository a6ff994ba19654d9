"""build-shards: filters with reasons, dedup, split, re-encoding, determinism, resume, stale shards."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import struct
import tarfile
import zlib

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from clipit.config.data import ShardSettings
from clipit.data import manifest, shard_format, shards
from clipit.data.shards import images
from clipit.errors import ClipitError, ManifestError

SETTINGS = ShardSettings(image_side=48, min_image_side=16, workers=0, rows_per_shard=4, val_fraction=0.3)


def jpeg(width: int, height: int, colour=(200, 40, 40), fmt="JPEG", mode="RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height), colour).save(out, format=fmt)
    return out.getvalue()


def png_bomb(side: int = 100_000) -> bytes:
    """A tiny PNG whose header claims side x side pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


GOOD = jpeg(64, 48)
WIDE = jpeg(300, 200, (30, 60, 220))
SMALL_OK = jpeg(40, 40, (30, 170, 50))
OTHER = jpeg(50, 60, (245, 225, 30))


def messy_source(folder):
    """A source with one row per problem; returns {key: expected (status, error)}."""
    members = {  # index -> bytes in the tar
        0: GOOD,
        1: WIDE,
        2: SMALL_OK,
        3: OTHER,
        10: b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4,  # corrupt JPEG
        11: jpeg(64, 64, (10, 200, 10))[:300],  # truncated JPEG
        12: b"",  # zero-byte file
        13: png_bomb(),
        14: jpeg(8, 8),
        20: GOOD,  # same bytes as 0 from another URL
    }
    folder.mkdir(parents=True)
    with tarfile.open(folder / "00000.tar", "w") as tar:
        for index, data in members.items():
            info = tarfile.TarInfo(f"{index:09d}.jpg")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        evil = tarfile.TarInfo("../000000077.jpg")  # never extracted, never matched
        evil.size = len(GOOD)
        tar.addfile(evil, io.BytesIO(GOOD))
    (folder / "local").mkdir()
    rgba = io.BytesIO()
    Image.new("RGBA", (60, 30), (250, 150, 200, 255)).save(rgba, format="PNG")
    (folder / "local" / "photo.png").write_bytes(rgba.getvalue())

    expected, rows = {}, []

    def row(name, expect, caption="un cerchio rosso", index=None, shard="00000.tar", **extra):
        key = f"messy/{name}"
        expected[key] = expect
        rows.append(
            {
                "key": key,
                "source": "messy",
                "url": extra.pop("url", f"http://x/{name}"),
                "caption": caption,
                "lang": extra.pop("lang", "it"),
                "status": extra.pop("status", "ok"),
                "split": "train",
                "shard": shard,
                "index": index,
                **extra,
            }
        )

    ok = ("ok", None)
    row("good", ok, index=0, image_sha256=hashlib.sha256(GOOD).hexdigest())
    row("wide", ok, caption="  un quadrato blu  ", index=1, url="http://x/shared")
    row("small-ok", ok, index=2)
    row("other", ok, index=3)
    row("corrupt", ("filtered", "decode_error"), index=10)
    row("truncated", ("filtered", "decode_error"), index=11)
    row("zero-byte", ("filtered", "empty_image"), index=12)
    row("bomb", ("filtered", "decompression_bomb"), index=13)
    row("tiny", ("filtered", "image_too_small"), index=14)
    row("empty-caption", ("filtered", "no_caption"), caption="", index=3)
    row("blank-caption", ("filtered", "no_caption"), caption="   ", index=3)
    # invisible format characters only (zero-width space and joiner, byte-order mark): no caption either
    row("invisible-caption", ("filtered", "no_caption"), caption="\u200b\u200b\u200d\ufeff \u200b", index=3)
    row("short-behind-invisible", ("filtered", "caption_too_short"), caption="\u200bab\u200b\u200b", index=3)
    row("null-caption", ("filtered", "no_caption"), caption=None, caption_en="a red circle", index=3)
    row("short", ("filtered", "caption_too_short"), caption="ab", index=3)
    row("long", ("filtered", "caption_too_long"), caption="x" * 1001, index=3)
    row("english", ("filtered", "wrong_language"), caption="a red circle", lang="en", index=3)
    row("dup-image", ("filtered", "duplicate_image"), caption="un'altra didascalia", index=20)
    row(
        "dup-pair", ("filtered", "duplicate_pair"), caption="UN QUADRATO  blu", index=1, url="http://x/shared"
    )
    row("second-caption", ok, caption="tre cerchi", index=1, url="http://x/shared")
    row("failed", ("failed", "HTTP 404"), caption="un gatto", status="failed", error="HTTP 404", shard=None)
    row("missing-member", ("filtered", "missing_image"), index=999)
    row("traversal-member", ("filtered", "missing_image"), index=77)
    row("traversal-shard", ("filtered", "bad_shard_path"), index=0, shard="../00000.tar")
    row("plain-file", ok, caption="un cuore rosa", shard="local/photo.png", url=None)
    row("plain-file-2", ok, caption="due cuori rosa", shard="local/photo.png", url=None)
    row("plain-missing", ("filtered", "missing_image"), shard="local/nothere.jpg", url=None)
    manifest.write(manifest.from_rows(rows), folder / "manifest.parquet")
    return expected


@pytest.fixture
def messy(tmp_path):
    expected = messy_source(tmp_path / "sources" / "messy")
    return tmp_path / "sources" / "messy", expected


def shard_rows(folder):
    out = []
    for split in manifest.SPLITS:
        for path in shard_format.list_shards(folder, split):
            out += [
                (split, path.name, i, r)
                for i, r in enumerate(shard_format.open_shard(path).read().to_pylist())
            ]
    return out


def test_every_problem_is_filtered_with_its_reason_and_nothing_else_is_lost(messy, tmp_path):
    source, expected = messy
    summary = shards.run(SETTINGS, tmp_path / "shards", [source])
    table = manifest.read(tmp_path / "shards")
    got = {r["key"]: (r["status"], r["error"]) for r in table.to_pylist()}
    assert got == expected
    oks = {k for k, v in expected.items() if v[0] == "ok"}
    stored = shard_rows(tmp_path / "shards")
    assert sorted(r["key"] for *_, r in stored) == sorted(oks)
    # counts by reason, in the summary and in summary.json
    reasons = {}
    for status, error in expected.values():
        if status == "filtered":
            reasons[error] = reasons.get(error, 0) + 1
    assert summary["filtered"] == reasons and summary["ok"] == len(oks) and summary["failed"] == 1
    on_disk = json.loads((tmp_path / "shards" / "summary.json").read_text())
    assert on_disk["per_source"]["messy"]["filtered"] == reasons and on_disk["rows"] == len(expected)
    # the manifest points at each kept row's place in the shards
    by_key = {r["key"]: r for r in table.to_pylist()}
    for split, name, index, row in stored:
        entry = by_key[row["key"]]
        assert (entry["split"], entry["shard"], entry["index"]) == (split, name, index)
        # by image: the hash of the image's bytes decides, not the row's key
        assert entry["split"] == manifest.split_for_image(
            SETTINGS.val_fraction, row["image_sha256"], None, ""
        )
        assert (entry["width"], entry["height"]) == (row["width"], row["height"])
    assert not (tmp_path / "000000077.jpg").exists() and not (tmp_path / "sources" / "000000077.jpg").exists()


def test_images_are_resized_to_the_shorter_side_without_upscaling(messy, tmp_path):
    source, _ = messy
    shards.run(SETTINGS, tmp_path / "shards", [source])
    expected = {  # key: (size, colour)
        "messy/good": ((64, 48), (200, 40, 40)),
        "messy/wide": ((72, 48), (30, 60, 220)),  # 300x200 -> shorter side 48
        "messy/small-ok": ((40, 40), (30, 170, 50)),  # smaller than 48: kept as is
        "messy/other": ((48, 58), (245, 225, 30)),  # 50x60 -> 48x57.6, rounded
        "messy/plain-file": ((60, 30), (250, 150, 200)),  # RGBA PNG -> RGB JPEG
    }
    rows = {r["key"]: r for *_, r in shard_rows(tmp_path / "shards")}
    for key, (size, colour) in expected.items():
        image = Image.open(io.BytesIO(rows[key]["image"]))
        assert image.format == "JPEG" and image.mode == "RGB"
        assert image.size == size == (rows[key]["width"], rows[key]["height"])
        assert np.abs(np.asarray(image, dtype=float).mean(axis=(0, 1)) - colour).max() < 6
    assert rows["messy/wide"]["caption"] == "un quadrato blu"  # stripped
    assert rows["messy/good"]["image_sha256"] == hashlib.sha256(GOOD).hexdigest()


def test_reencode_checks_pixels_from_the_header_before_decoding():
    settings = images.ImageSettings(
        image_side=48, jpeg_quality=90, min_image_side=16, max_image_pixels=300 * 199
    )
    assert images.reencode(WIDE, settings) == images.BOMB  # 60,000 pixels > the limit
    assert isinstance(images.reencode(OTHER, settings), images.Encoded)
    assert images.reencode(png_bomb(20_000), settings) == images.BOMB
    assert images.reencode(b"not an image", settings) == images.DECODE_ERROR


def test_synthetic_build_counts_split_and_rerun_is_idempotent(synthetic_source, tmp_path):
    settings = SETTINGS.model_copy(update={"rows_per_shard": 10, "val_fraction": 0.2})
    first = shards.run(settings, tmp_path / "a", [synthetic_source])
    built = manifest.read(tmp_path / "a").to_pylist()
    val = [r["key"] for r in built if manifest.split_for_image(0.2, r["image_sha256"], None, "") == "val"]
    n = len(built)  # every synthetic row is kept
    assert 0 < len(val) < n
    assert first["rows"] == first["ok"] == n and first["val"] == len(val) and first["train"] == n - len(val)
    assert shard_format.count_rows(tmp_path / "a", "val") == len(val)
    assert [p.name for p in shard_format.list_shards(tmp_path / "a", "train")] == first["shards"]["train"]
    assert all(
        len(shard_format.open_shard(p).read()) <= 10
        for p in shard_format.list_shards(tmp_path / "a", "train")
    )
    before = {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir() if p.is_file()}
    again = shards.run(settings, tmp_path / "a", [synthetic_source])
    assert again["shards_reused"] == len(first["shards"]["train"]) + len(first["shards"]["val"])
    assert {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir() if p.is_file()} == before
    # worker processes give the same bytes as the main process
    shards.run(settings.model_copy(update={"workers": 2}), tmp_path / "b", [synthetic_source])
    assert {p.name: p.read_bytes() for p in (tmp_path / "b").iterdir() if p.is_file()} == before
    # the stored captions and labels are the source's
    source_rows = {r["key"]: r for r in manifest.read(synthetic_source).to_pylist()}
    for *_, row in shard_rows(tmp_path / "a"):
        assert (row["caption"], row["caption_en"], row["meta"]) == tuple(
            source_rows[row["key"]][c] for c in ("caption", "caption_en", "meta")
        )


def test_a_damaged_shard_is_rebuilt_and_stale_shards_are_removed(synthetic_source, tmp_path):
    out = tmp_path / "shards"
    settings = SETTINGS.model_copy(update={"rows_per_shard": 5, "val_fraction": 0.0})
    shards.run(settings, out, [synthetic_source])
    reference = (out / "train-00003.parquet").read_bytes()
    damaged = bytearray(reference)  # the data pages, not the footer: still a shard clipit wrote, but broken
    damaged[8:200] = b"\0" * 192
    (out / "train-00003.parquet").write_bytes(bytes(damaged))
    result = shards.run(settings, out, [synthetic_source])
    assert (out / "train-00003.parquet").read_bytes() == reference
    assert result["shards_reused"] == len(result["shards"]["train"]) - 1
    # fewer, larger shards: the old numbers beyond the new plan must not linger for the loader
    n = manifest.read(synthetic_source).num_rows
    result = shards.run(settings.model_copy(update={"rows_per_shard": 40}), out, [synthetic_source])
    assert [p.name for p in shard_format.list_shards(out, "train")] == [
        f"train-{k:05d}.parquet" for k in range(-(-n // 40))
    ]
    assert shard_format.count_rows(out, "train") == n
    assert sorted(p.name for p in (out / ".build").iterdir()) == [
        f"{n}.json" for n in result["shards"]["train"]
    ]


def test_two_sources_merge_and_duplicates_across_sources_are_removed(synthetic_source, messy, tmp_path):
    source, expected = messy
    copy = tmp_path / "copy"
    shutil.copytree(synthetic_source, copy)
    table = manifest.read(copy)
    renamed = table.set_column(0, "key", [[f"copy/{k}" for k in table.column("key").to_pylist()]])
    manifest.write(renamed, copy / "manifest.parquet")
    summary = shards.run(SETTINGS, tmp_path / "out", [synthetic_source, source, copy])
    n = table.num_rows
    assert summary["per_source"]["synthetic"]["rows"] == 2 * n  # both synthetic folders: source "synthetic"
    assert summary["ok"] == n + sum(v[0] == "ok" for v in expected.values())
    # the copy's images are the same bytes with the same captions: every one is a duplicate pair
    assert summary["filtered"]["duplicate_pair"] == n + 1
    with pytest.raises(ManifestError, match="is in both"):
        shards.run(SETTINGS, tmp_path / "out2", [synthetic_source, synthetic_source])


def test_bad_inputs_are_one_line_errors_and_write_nothing(tmp_path, synthetic_source):
    with pytest.raises(ClipitError, match="does not exist"):
        shards.run(SETTINGS, tmp_path / "out", [tmp_path / "nowhere"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match="manifest"):
        shards.run(SETTINGS, tmp_path / "out", [tmp_path / "empty"])
    (tmp_path / "wrong").mkdir()
    pq.write_table(
        pq.read_table(synthetic_source / "manifest.parquet").drop_columns(["caption"]),
        tmp_path / "wrong" / "manifest.parquet",
    )
    with pytest.raises(ManifestError, match="caption"):
        shards.run(SETTINGS, tmp_path / "out", [tmp_path / "wrong"])
    with pytest.raises(ClipitError, match="no source"):
        shards.run(SETTINGS, tmp_path / "out", [])
    assert not (tmp_path / "out").exists()


def test_tar_index_reads_headers_like_tarfile_and_survives_damage(tmp_path):
    from clipit.data.shards import locate

    def build(path, long_name: bool):
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
            for i, data in enumerate([GOOD, WIDE, OTHER]):
                info = tarfile.TarInfo(f"{i:09d}.jpg")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            link = tarfile.TarInfo("000000005.jpg")  # a link is not an image
            link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(link)
            if long_name:  # needs a pax header: the fast scan hands over to tarfile
                info = tarfile.TarInfo("x" * 150 + "/000000009.jpg")
                info.size = 3
                tar.addfile(info, io.BytesIO(b"abc"))

    for long_name in (False, True):
        path = tmp_path / f"t{long_name}.tar"
        build(path, long_name)
        index = locate.tar_index(str(path))
        assert sorted(index) == [0, 1, 2]
        for i, data in enumerate([GOOD, WIDE, OTHER]):
            assert locate.read_bytes(locate.Location(str(path), *index[i])) == data
    truncated = tmp_path / "cut.tar"
    full = (tmp_path / "tFalse.tar").read_bytes()
    truncated.write_bytes(full[: 512 + len(GOOD) + 512 + 100])  # the second member is cut short
    assert sorted(locate.tar_index(str(truncated))) == [0]
