"""build-shards on real-shaped sources: splits by image, a source's fixed val split, decontamination."""

from __future__ import annotations

import io
import json
import os
import shutil
from collections import defaultdict

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from clipit.cli.main import app
from clipit.config.data import ShardSettings
from clipit.data import manifest, shard_format, shards
from clipit.data.shards import exclude
from tests.support import real_shaped
from tests.support.real_shaped import DEV_IDS, coco_image_name, photo_jpeg

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
runner = CliRunner()
SETTINGS = ShardSettings(workers=0, rows_per_shard=16, val_fraction=0.3, image_side=64, min_image_side=16)


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> real_shaped.RealShaped:
    return real_shaped.make_sources(tmp_path_factory.mktemp("real-shaped"))


def ok_rows(folder) -> list[dict]:
    return [r for r in manifest.read(folder).to_pylist() if r["status"] == manifest.STATUS_OK]


def splits_by_image(rows: list[dict]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        found[row["image_sha256"]].add(row["split"])
    return found


def dev_shas(sources) -> set[str]:
    return {r["image_sha256"] for r in ok_rows(sources.mscoco_dev)}


@pytest.mark.parametrize("dedup", [False, True])
def test_a_mix_of_sources_puts_no_image_in_two_splits(sources, tmp_path, dedup):
    out = tmp_path / "shards"
    args = ["build-shards", "--out", str(out), str(sources.mscoco), str(sources.cc3m), str(sources.wit),
            "--val-fraction", "0.3", "--set", "data.shards.workers=0", "--set", "data.shards.image_side=64",
            "--set", f"data.shards.dedup_images={str(dedup).lower()}"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = ok_rows(out)
    by_image = splits_by_image(rows)
    assert all(len(s) == 1 for s in by_image.values()), {k[:8]: s for k, s in by_image.items() if len(s) > 1}
    # 5 captions per MSCOCO-IT image, 3 pages of one WIT image: several rows per image, yet one split each
    assert max(sum(r["image_sha256"] == sha for r in rows) for sha in by_image) >= 5
    # the dev file's images stay val, in every source that has them (CC3M's copy of dev image 101 too)
    dev = dev_shas(sources)
    assert len(dev) == len(DEV_IDS)
    assert {r["split"] for r in rows if r["image_sha256"] in dev} == {"val"}
    if not dedup:
        assert {r["source"] for r in rows if r["image_sha256"] in dev} == {"mscoco-it", "cc3m"}
        shared = {r["source"] for r in rows if r["url"] and r["url"].endswith("/photo/coco-1")}
        assert shared == {"mscoco-it", "wit"}  # MSCOCO-IT train image 1 on two WIT pages: one split
    # both split's shards hold what the manifest says, and the printed counts are by image and by row
    for split in manifest.SPLITS:
        in_split = [r for r in rows if r["split"] == split]
        assert shard_format.count_rows(out, split) == len(in_split) > 0
        images = len({r["image_sha256"] for r in in_split})
        assert f"{split}: {images} images, {len(in_split)} caption rows" in result.stdout
    summary = json.loads((out / shard_format.SUMMARY_NAME).read_text())
    assert summary["images"] == {
        s: len({r["image_sha256"] for r in rows if r["split"] == s}) for s in manifest.SPLITS
    }
    # shared caption strings on different images are kept: they are different pairs
    premiere = [r for r in rows if r["caption_en"] == "actor attends the premiere"]
    assert len(premiere) == 3


def test_every_source_alone_agrees_with_its_own_split_and_keeps_every_caption(sources, tmp_path):
    # download mscoco-it: the dev file's images are val on purpose, every caption of an image in one split
    source_rows = manifest.read(sources.mscoco).to_pylist()
    dev = [r for r in source_rows if manifest.meta_of(r)["file"] == real_shaped.DEV_FILE]
    assert len(dev) == 5 * len(DEV_IDS) and all(r["split"] == "val" and r["split_fixed"] for r in dev)
    assert not any(r["split_fixed"] for r in source_rows if r not in dev)
    assert all(len(s) == 1 for s in splits_by_image(source_rows).values())
    for folder, images, captions in ((sources.mscoco, 16, 80), (sources.cc3m, 7, 7), (sources.wit, 4, 7)):
        out = tmp_path / folder.name
        summary = shards.run(SETTINGS, out, [folder])
        rows = ok_rows(out)
        assert len(rows) == summary["ok"] == captions  # plain files (mscoco-it) and tars (cc3m, wit)
        assert summary["images"]["train"] + summary["images"]["val"] == images
        assert all(len(s) == 1 for s in splits_by_image(rows).values())
        # a source computes the same split as build-shards when both use the same val_fraction
        again = real_shaped_split(folder, SETTINGS.val_fraction)
        assert {r["key"]: r["split"] for r in rows} == {k: again[k] for k in (r["key"] for r in rows)}


def real_shaped_split(folder, val_fraction: float) -> dict[str, str]:
    """The split each row of a source gets from the source's own rule at `val_fraction`."""
    split = {}
    for row in manifest.read(folder).to_pylist():
        if row["split_fixed"]:
            split[row["key"]] = row["split"]
        else:
            split[row["key"]] = manifest.split_for_image(
                val_fraction, row["image_sha256"], row["url"], row["key"]
            )
    return split


def test_exclude_removes_exact_and_reencoded_copies_of_eval_images_and_counts_them(sources, tmp_path):
    evalset = tmp_path / "imagenet-it-val" / "n01440764"
    evalset.mkdir(parents=True)
    shutil.copy(sources.coco_images / coco_image_name(3), evalset / "exact.JPEG")  # same bytes as image 3
    smaller = io.BytesIO()  # image 4, resized and re-encoded at another quality: other bytes, same picture
    Image.open(io.BytesIO(photo_jpeg("coco-4"))).resize((64, 48), Image.Resampling.BILINEAR).save(
        smaller, format="JPEG", quality=50
    )
    (evalset / "reencoded.jpg").write_bytes(smaller.getvalue())
    (evalset / "unrelated.jpg").write_bytes(photo_jpeg("not-in-any-source"))
    folders = [sources.mscoco, sources.cc3m, sources.wit]
    plain = shards.run(SETTINGS, tmp_path / "plain", folders)

    out = tmp_path / "clean"
    args = ["build-shards", "--out", str(out), *map(str, folders), "--exclude", str(evalset.parent),
            "--set", "data.shards.workers=0", "--set", "data.shards.image_side=64",
            "--set", "data.shards.val_fraction=0.3", "--set", "data.shards.min_image_side=16",
            "--set", "data.shards.rows_per_shard=16"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output

    rows = {r["key"]: r for r in manifest.read(out).to_pylist()}
    removed = {k for k, r in rows.items() if r["error"] == exclude.EVAL_OVERLAP}
    assert removed == {f"mscoco-it/{i}/{n}" for i in (3, 4) for n in range(5)}
    summary = json.loads((out / shard_format.SUMMARY_NAME).read_text())
    assert summary["eval_overlap"] == {"exclude": [str(evalset.parent)], "exclude_images": 3, "rows": 10,
                                       "same_bytes": 5, "near_duplicate": 5}  # fmt: skip
    assert summary["filtered"][exclude.EVAL_OVERLAP] == 10 and summary["ok"] == plain["ok"] - 10
    assert "eval_overlap: 10 rows removed (5 same bytes, 5 near-duplicates)" in result.stdout
    stored = {k for split in manifest.SPLITS for p in shard_format.list_shards(out, split)
              for k in shard_format.open_shard(p).read(columns=["key"]).column("key").to_pylist()}  # fmt: skip
    assert stored.isdisjoint(removed) and len(stored) == plain["ok"] - 10


def test_an_mscoco_it_val_source_as_exclude_keeps_its_images_out_of_other_sources(sources, tmp_path):
    settings = SETTINGS.model_copy(update={"exclude": [sources.mscoco_dev / manifest.MANIFEST_NAME]})
    summary = shards.run(settings, tmp_path / "out", [sources.cc3m, sources.wit])
    rows = manifest.read(tmp_path / "out").to_pylist()
    assert [r["key"] for r in rows if r["error"] == exclude.EVAL_OVERLAP] == ["cc3m/5"]  # dev image 101
    assert summary["eval_overlap"]["same_bytes"] == 1 and summary["eval_overlap"]["exclude_images"] == len(
        DEV_IDS
    )
    # changing the exclude set rebuilds the shards it changes; the same one reuses them all
    again = shards.run(settings, tmp_path / "out", [sources.cc3m, sources.wit])
    assert again["shards_reused"] == sum(len(v) for v in again["shards"].values())
    without = shards.run(SETTINGS, tmp_path / "out", [sources.cc3m, sources.wit])
    assert without["ok"] == summary["ok"] + 1 and without["shards_reused"] == 0


def test_bad_excludes_and_contradictory_filters_are_one_line_exit_2_before_any_write(sources, tmp_path):
    out = tmp_path / "out"
    cases = [
        (["--exclude", str(tmp_path / "nowhere")], "nowhere: no such folder or manifest"),
        (["--exclude", str(tmp_path)], "no images found there"),
        (["--exclude", str(sources.wit)], "is both a source and an --exclude entry"),
        (["--set", "data.shards.min_caption_chars=50", "--set", "data.shards.max_caption_chars=20"],
         "min_caption_chars 50 > max_caption_chars 20"),
        (["--set", "data.shards.min_image_side=100", "--set", "data.shards.max_image_pixels=5000"],
         "max_image_pixels 5000: every image would be filtered"),
    ]  # fmt: skip
    for extra, message in cases:
        result = runner.invoke(app, ["build-shards", "--out", str(out), str(sources.wit), *extra])
        assert result.exit_code == 2, result.output
        assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
        assert not out.exists()


def test_near_is_one_vectorised_hamming_test_and_flat_images_have_no_phash():
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**63, 10_000, dtype=np.uint64)
    index = exclude.ExcludeIndex(phash=hashes, max_distance=4, images=len(hashes))
    probe = int(hashes[1234]) ^ 0b1011  # three bits away
    assert index.near(probe) and not index.near(int(hashes[1234]) ^ 0b11111)  # five bits away
    assert not exclude.ExcludeIndex(phash=hashes, max_distance=2, images=1).near(probe)
    assert exclude.perceptual_hash(Image.new("RGB", (64, 64), (200, 30, 30))) is None
    assert exclude.hash_bytes(b"not an image") is None
