"""The synthetic dataset: layout of a real download, determinism, labels that match pixels, eval sets, tokenizer."""

from __future__ import annotations

import hashlib
import io
import json
import random
import tarfile
from collections import defaultdict

import numpy as np
import pyarrow.parquet as pq
from PIL import Image
from scipy import ndimage
from transformers import AutoTokenizer

from clipit.data import manifest, synthetic
from clipit.data.synthetic import draw, grammar, paraphrase, scenes
from tests.support.synthetic_source import tiny_synthetic_config


def tree_bytes(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_layout_is_an_img2dataset_download_with_a_valid_manifest(synthetic_source):
    table = manifest.read(synthetic_source)
    rows = table.to_pylist()
    assert len(rows) == 48 * 3  # 48 images, 3 captions each (one row per image-caption pair)
    assert {p.name for p in synthetic_source.glob("0000*")} == {
        f"0000{i}{ext}" for i in range(3) for ext in (".tar", ".parquet", "_stats.json")
    }
    for row in rows:
        assert row["source"] == "synthetic" and row["status"] == "ok" and row["lang"] == "it"
        assert row["key"].rsplit("/", 1)[0] == f"synthetic/{row['index']}"
        assert row["split"] == manifest.split_for_key(f"synthetic/{row['index']}", 0.05)
        assert row["shard"] == f"{row['index'] // 20:05d}.tar"
    by_index = {r["index"]: r for r in rows if r["key"].endswith("/0")}  # the plain caption, also in the tar
    for shard in sorted(synthetic_source.glob("*.tar")):
        with tarfile.open(shard) as tar:
            names = tar.getnames()
            for name in names:
                if not name.endswith(".jpg"):
                    continue
                row = by_index[int(name[:-4])]
                data = tar.extractfile(name).read()
                assert hashlib.sha256(data).hexdigest() == row["image_sha256"]
                assert Image.open(io.BytesIO(data)).size == (row["width"], row["height"]) == (64, 64)
                assert tar.extractfile(name[:-4] + ".txt").read().decode() == row["caption"]
                record = json.loads(tar.extractfile(name[:-4] + ".json").read())
                assert record["key"] == name[:-4] and record["status"] == "success"
        stats = json.loads(shard.with_name(shard.stem + "_stats.json").read_text())
        parquet = pq.read_table(shard.with_suffix(".parquet"))
        assert stats["successes"] == stats["count"] == parquet.num_rows == len(names) // 3
        assert parquet.column("caption").to_pylist() == [
            by_index[int(k)]["caption"] for k in parquet.column("key").to_pylist()
        ]


def _every_wording(meta: dict) -> set[tuple[str, str]]:
    """Every (Italian, English) caption the labels can be written as, in every paraphrase style."""
    groups = tuple(grammar.Group(**g) for g in meta["groups"])
    return {
        paraphrase.render(groups, meta["relation"], meta["background"], paraphrase.Style(o, d, s, b))
        for o in paraphrase.OPENINGS
        for d in (False, True)
        for s in (False, True)
        for b in paraphrase.BACKGROUND_WORDS
    }


def test_captions_are_the_labels_in_words(synthetic_source):
    for row in manifest.read(synthetic_source).to_pylist():
        meta = manifest.meta_of(row)
        groups = tuple(grammar.Group(**g) for g in meta["groups"])
        assert (row["caption"], row["caption_en"]) in _every_wording(meta)
        if row["key"].endswith("/0"):  # the plain caption comes first
            assert row["caption"] in {
                grammar.caption_it(groups, meta["relation"], bg) for bg in (meta["background"], None)
            }
        assert 1 <= meta["objects"] == sum(g.count for g in groups) <= 4
        assert all(g.colour != meta["background"] for g in groups)


def test_an_image_has_several_distinct_captions_in_one_split_and_captions_recur(tmp_path):
    cfg = tiny_synthetic_config(n=200, captions_per_image=4, zeroshot_per_class=1, retrieval_images=2)
    synthetic.generate(cfg, tmp_path / "syn", val_fraction=0.5)
    by_image = defaultdict(list)
    for row in manifest.read(tmp_path / "syn").to_pylist():
        by_image[row["index"]].append(row)
    assert sorted(by_image) == list(range(200))
    images_of = defaultdict(set)
    for index, rows in by_image.items():
        assert [r["key"] for r in rows] == [f"synthetic/{index}/{n}" for n in range(len(rows))]
        assert len(rows) == 4 and len({r["caption"] for r in rows}) == 4
        # one image: one split (by the image, not by the row key), one tar member, one sha256
        assert len({(r["split"], r["shard"], r["image_sha256"], r["url"]) for r in rows}) == 1
        for r in rows:
            images_of[r["caption"]].add(index)
    assert {r[0]["split"] for r in by_image.values()} == {"train", "val"}
    assert sum(len(images) > 1 for images in images_of.values()) > 10  # caption strings shared by images
    # one caption per image is the plain caption, as before paraphrases existed
    synthetic.generate(cfg.model_copy(update={"captions_per_image": 1}), tmp_path / "one")
    one = manifest.read(tmp_path / "one").to_pylist()
    assert [r["key"] for r in one] == [f"synthetic/{i}/0" for i in range(200)]
    assert [r["caption"] for r in one] == [by_image[i][0]["caption"] for i in range(200)]
    assert [r["image_sha256"] for r in one] == [by_image[i][0]["image_sha256"] for i in range(200)]


def _blobs(image: Image.Image, colour: str) -> list[tuple[float, float]]:
    """Centres of the connected regions close to a colour (a naive object detector)."""
    pixels = np.asarray(image, dtype=np.int32)
    mask = np.abs(pixels - np.array(grammar.COLOURS[colour].rgb)).max(axis=-1) <= 2 * draw.COLOUR_JITTER
    labels, n = ndimage.label(mask)
    return [tuple(c) for c in ndimage.center_of_mass(mask, labels, range(1, n + 1))]


def test_rendered_objects_match_counts_and_relations():
    """Counting blobs of each colour in 300 rendered scenes gives the caption's counts and sides."""
    for i in range(300):
        scene = scenes.sample_training_scene(scenes.rng_for(7, "train", i))
        image = draw.render(scene, 64)
        colours = {g.colour for g in scene.groups}
        for colour in colours:
            expected = sum(g.count for g in scene.groups if g.colour == colour)
            assert len(_blobs(image, colour)) == expected, (
                i,
                grammar.caption_it(scene.groups, scene.relation, None),
            )
        if scene.relation and len(colours) == 2:
            first, second = (_blobs(image, g.colour) for g in scene.groups)
            axis = 1 if scene.relation in ("left_of", "right_of") else 0  # (row, column) centres
            sign = -1 if scene.relation in ("left_of", "above") else 1
            assert all(sign * (a[axis] - b[axis]) > 0 for a in first for b in second)


def test_held_out_pairs_never_appear_in_training(synthetic_source):
    held = set(scenes.HELD_OUT)
    for i in range(2000):
        scene = scenes.sample_training_scene(scenes.rng_for(0, "train", i))
        assert not {(o.shape, o.colour) for o in scene.objects} & held
    for row in manifest.read(synthetic_source).to_pylist():
        assert not {(g["shape"], g["colour"]) for g in manifest.meta_of(row)["groups"]} & held


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    cfg = tiny_synthetic_config(n=12, samples_per_shard=5, zeroshot_per_class=1, retrieval_images=2)
    synthetic.generate(cfg, tmp_path / "a")
    synthetic.generate(cfg, tmp_path / "b")
    a, b = tree_bytes(tmp_path / "a"), tree_bytes(tmp_path / "b")
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)
    synthetic.generate(cfg.model_copy(update={"seed": 1}), tmp_path / "c")
    other = manifest.read(tmp_path / "c").column("image_sha256").to_pylist()
    assert set(other).isdisjoint(manifest.read(tmp_path / "a").column("image_sha256").to_pylist())


def test_rerun_after_a_lost_shard_rebuilds_only_that_shard(tmp_path):
    cfg = tiny_synthetic_config(n=12, samples_per_shard=5, zeroshot_per_class=1, retrieval_images=2)
    out = tmp_path / "syn"
    synthetic.generate(cfg, out)
    before = tree_bytes(out)
    (out / "00001_stats.json").unlink()  # as if killed before the shard's last write
    (out / ".clipit-00002.tar.123.tmp").write_bytes(b"partial")  # leftover of a killed atomic write
    summary = synthetic.generate(cfg, out)
    assert summary["shards"] == 3 and summary["shards_reused"] == 2
    assert tree_bytes(out) == before
    # a smaller rerun in the same folder leaves no shard that its manifest does not name
    synthetic.generate(cfg.model_copy(update={"n": 6}), out)
    assert sorted(p.name for p in out.glob("0000*")) == [
        "00000.parquet",
        "00000.tar",
        "00000_stats.json",
        "00001.parquet",
        "00001.tar",
        "00001_stats.json",
    ]
    assert manifest.read(out).column("shard").to_pylist() == ["00000.tar"] * 15 + ["00001.tar"] * 3


def test_tokenizer_covers_every_caption_class_name_and_template(synthetic_source):
    tokenizer = AutoTokenizer.from_pretrained(synthetic_source / "tokenizer")
    assert (synthetic_source / "tokenizer" / "vocab.txt").is_file()
    texts = manifest.read(synthetic_source).column("caption").to_pylist()
    retrieval = json.loads((synthetic_source / "retrieval" / "captions.json").read_text())
    texts += [a["caption"] for a in retrieval["annotations"]]
    for attribute in ("colour", "shape", "count", "composition", "relation"):
        folder = synthetic_source / "zeroshot" / attribute
        names = json.loads((folder / "classnames.json").read_text())["synthetic"]
        templates = json.loads((folder / "templates.json").read_text())["synthetic"]
        texts += [t.replace("{c}", c) for t in templates for c in names]
    # every word the grammar can produce, in every form, tokenises to itself: one token, never [UNK]
    for word in sorted(paraphrase.all_words()):
        assert tokenizer.tokenize(word) == [word]
    assert any("c'è" in t for t in texts) and any("di colore" in t for t in texts)
    for text in texts:
        ids = tokenizer(text)["input_ids"]
        assert tokenizer.unk_token_id not in ids, text
        # [CLS] + one token per word ("c'è" is c ' è, as BERT splits punctuation) + [SEP]
        assert len(ids) == paraphrase.token_count(text) + 2
        assert len(ids) <= 16  # what the tiny config's text tower reads: no caption is cut
    # a word outside the synthetic world splits into letters rather than [UNK]
    assert tokenizer.unk_token_id not in tokenizer("Gatto nero")["input_ids"]


def test_zeroshot_sets_follow_the_documented_layout(synthetic_source):
    root = synthetic_source / "zeroshot"
    index = json.loads((root / "index.json").read_text())
    expected_classes = {"colour": 8, "shape": 6, "count": 4, "composition": 6, "relation": 4}
    assert {k: v["classes"] for k, v in index.items()} == expected_classes
    for attribute, spec in index.items():
        folder = root / attribute
        names = json.loads((folder / "classnames.json").read_text())["synthetic"]
        templates = json.loads((folder / "templates.json").read_text())["synthetic"]
        assert all("{c}" in t for t in templates)
        classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
        assert len(classes) == len(names) == spec["classes"]
        for number, folder_name in enumerate(classes):
            assert folder_name == f"{number:02d}-{names[number].replace(' ', '-')}"
            assert len(list((folder / folder_name).glob("*.jpg"))) == 3
        assert abs(spec["chance"] - 1 / spec["classes"]) < 1e-9
    composition = json.loads((root / "composition" / "classnames.json").read_text())["synthetic"]
    assert composition == [grammar.group_it(grammar.Group(s, c, 1)) for s, c in scenes.HELD_OUT]


def test_zeroshot_images_show_their_class():
    """Each class sampler draws what its class name says: colour, shape and count of the objects."""
    sets = synthetic.evalsets.attribute_sets()
    rng = random.Random(0)
    for number, sampler in enumerate(sets["colour"]["samplers"]):
        scene = sampler(rng)
        assert [g.colour for g in scene.groups] == [sets["colour"]["classnames"][number]]
    for number, sampler in enumerate(sets["count"]["samplers"]):
        scene = sampler(rng)
        assert len(scene.objects) == number + 1
        assert len(_blobs(draw.render(scene, 64), scene.groups[0].colour)) == number + 1
    for number, sampler in enumerate(sets["shape"]["samplers"]):
        scene = sampler(rng)
        assert scene.groups[0].shape == list(grammar.SHAPES)[number]
        assert scene.groups[0].colour in grammar.INVARIABLE_COLOURS
    where = {"a sinistra di": (0, -1), "a destra di": (0, 1), "sopra": (1, -1), "sotto": (1, 1)}
    for number, sampler in enumerate(sets["relation"]["samplers"]):
        axis, sign = where[sets["relation"]["classnames"][number]]
        for _ in range(5):
            scene = sampler(rng)
            first, second = (
                (o.cx, o.cy)[axis] for o in scene.objects
            )  # one object per group, in group order
            assert sign * (first - second) > 0, (number, scene.objects)
            assert all((g.shape, g.colour) not in scenes.HELD_OUT for g in scene.groups)


def test_retrieval_set_is_coco_caption_json(synthetic_source):
    folder = synthetic_source / "retrieval"
    data = json.loads((folder / "captions.json").read_text())
    assert [im["id"] for im in data["images"]] == list(range(6))
    for image in data["images"]:
        assert Image.open(folder / "images" / image["file_name"]).size == (64, 64)
        captions = [a["caption"] for a in data["annotations"] if a["image_id"] == image["id"]]
        assert 2 <= len(captions) <= 3 and len(set(captions)) == len(captions)
    assert len({a["id"] for a in data["annotations"]}) == len(data["annotations"])


def test_worker_processes_draw_the_same_bytes(tmp_path, monkeypatch):
    cfg = tiny_synthetic_config(n=30, samples_per_shard=20, zeroshot_per_class=1, retrieval_images=2)
    synthetic.generate(cfg.model_copy(update={"workers": 0}), tmp_path / "main")
    monkeypatch.setattr(synthetic, "PARALLEL_FROM", 1)  # use the pool even for 30 images
    monkeypatch.setattr(synthetic, "_CHUNK", 7)  # several chunks per shard, reassembled in order
    synthetic.generate(cfg.model_copy(update={"workers": 2}), tmp_path / "pool")
    assert tree_bytes(tmp_path / "main") == tree_bytes(tmp_path / "pool")
