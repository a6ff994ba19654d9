"""Retrieval: COCO caption files (MSCOCO-IT's string ids) and the metrics on real embeddings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clipit.errors import DataError
from clipit.eval import retrieval
from clipit.eval.metrics import retrieval_metrics
from tests.support.images import write_corrupt, write_images

CAPTIONS = [
    ("1", "un gatto rosso"),
    ("1", "una foto di un gatto"),
    ("2", "due cerchi blu"),
    ("3", "una casa su sfondo bianco"),
    ("3", "una casa"),
    ("3", "la casa piccola"),
    ("4", "un cane"),
]


def coco_file(tmp_path, image_names, captions=CAPTIONS, ids=(1, 2, 3, 4)):
    """MSCOCO-IT's validated form: images[].id int, annotations[].image_id str."""
    data = {
        "images": [{"id": i, "file_name": name} for i, name in zip(ids, image_names, strict=True)],
        "annotations": [
            {"id": n, "image_id": image_id, "caption": c} for n, (image_id, c) in enumerate(captions)
        ],
    }
    path = tmp_path / "captions.json"
    path.write_text(json.dumps(data, ensure_ascii=False))
    return path


def test_string_image_ids_join_int_ids(tmp_path):
    names = [p.name for p in write_images(tmp_path / "images", [(32, 32)] * 4)]
    captions = retrieval.read_coco_captions(coco_file(tmp_path, names), tmp_path / "images")
    assert [p.name for p in captions.image_paths] == names
    assert captions.caption_image.tolist() == [0, 0, 1, 2, 2, 2, 3]
    assert captions.captions[0] == "un gatto rosso"
    # Zero-padded string ids are the same ids.
    padded = [(f"{int(i):06d}", c) for i, c in CAPTIONS]
    again = retrieval.read_coco_captions(coco_file(tmp_path, names, padded), tmp_path / "images")
    assert again.caption_image.tolist() == captions.caption_image.tolist()


def test_images_without_captions_are_left_out_and_counted(tmp_path):
    names = [p.name for p in write_images(tmp_path / "images", [(32, 32)] * 4)]
    only_some = [c for c in CAPTIONS if c[0] != "2"]
    captions = retrieval.read_coco_captions(coco_file(tmp_path, names, only_some), tmp_path / "images")
    assert len(captions.image_paths) == 3 and captions.images_without_captions == 1
    assert captions.caption_image.tolist() == [0, 0, 1, 1, 1, 2]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["annotations"].append({"image_id": "99", "caption": "x"}),
            "image_id '99', not in 'images'",
        ),
        (
            lambda d: d["images"].append({"id": 5, "file_name": "../../etc/passwd"}),
            "leaves the images folder",
        ),
        (lambda d: d["images"].append({"id": "1", "file_name": "x.jpg"}), "repeats id"),
        (lambda d: d.pop("annotations"), "no 'images' and 'annotations'"),
        (lambda d: d["annotations"][2].pop("caption"), r"annotations\[2\] needs"),
    ],
)
def test_bad_caption_files_name_the_entry(tmp_path, change, message):
    names = [p.name for p in write_images(tmp_path / "images", [(32, 32)] * 4)]
    path = coco_file(tmp_path, names)
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=message):
        retrieval.read_coco_captions(path, tmp_path / "images")


def test_evaluate_equals_metrics_on_pytorch_features(encoder, reference, tmp_path):
    paths = write_images(tmp_path / "images", [(40, 30), (32, 32), (50, 80), (64, 64)])
    write_corrupt(tmp_path / "images" / "broken.jpg")
    names = [p.name for p in paths]
    # A fifth image that cannot be read: it and its caption are dropped and counted.
    path = coco_file(
        tmp_path, [*names, "broken.jpg"], [*CAPTIONS, ("5", "un gatto nero")], ids=(1, 2, 3, 4, 5)
    )
    captions = retrieval.read_coco_captions(path, tmp_path / "images")
    result = retrieval.evaluate(encoder, captions, dataset="toy", model_name="tiny", batch_size=4)
    expected = retrieval_metrics(
        reference.texts([c for _, c in CAPTIONS]),
        np.array([0, 0, 1, 2, 2, 2, 3]),
        reference.images(paths),
        captions=[c for _, c in CAPTIONS],
    )
    assert result.metrics.keys() == expected.keys()
    for key, value in expected.items():
        assert result.metrics[key] == pytest.approx(value), key
    assert result.counts == {
        "images": 4,
        "captions": 7,
        "texts": 7,
        "unreadable_images": 1,
        "captions_of_unreadable_images": 1,
        "images_without_captions": 0,
    }


def test_evaluate_counts_identical_captions_as_one_text(encoder, tmp_path):
    paths = write_images(tmp_path / "images", [(40, 30), (32, 32), (50, 80)])
    shared = [("1", "una forma"), ("2", "una forma"), ("3", "una forma"), ("3", "un cerchio")]
    path = coco_file(tmp_path, [p.name for p in paths], shared, ids=(1, 2, 3))
    result = retrieval.evaluate(
        encoder,
        retrieval.read_coco_captions(path, tmp_path / "images"),
        dataset="toy",
        model_name="tiny",
        batch_size=4,
    )
    assert result.counts["captions"] == 4 and result.counts["texts"] == 2
    # "una forma" describes every image, so as one text it is found at rank 1 whatever the model;
    # "un cerchio" ranks 1 or not: text->image recall@1 is over 2 texts, 1/2 or 1.
    assert result.metrics["image_retrieval_recall@1"] in (pytest.approx(0.5), pytest.approx(1.0))
    # image->text: 2 candidate texts, each image has one of them -> found within the top 2
    assert result.metrics["text_retrieval_recall@5"] == pytest.approx(1.0)
