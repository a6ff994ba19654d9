"""Zero-shot: the classifier is the template average, computed here by hand from PyTorch's features."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clipit.errors import DataError
from clipit.eval import tasks, zeroshot
from clipit.eval.image_sets import class_folders, labels_file
from clipit.eval.tasks import Task
from tests.eval.test_classnames import SHARED, Server
from tests.support.images import write_corrupt, write_images

CLASSES = ["un gatto", "un cane", "una casa"]
TEMPLATES = ["una foto di {c}", "{c}", "una foto di {c} piccolo"]


def test_classifier_is_the_normalised_mean_of_normalised_template_embeddings(encoder, reference):
    got = zeroshot.build_classifier(encoder, CLASSES, TEMPLATES, batch_size=4)
    expected = []
    for name in CLASSES:
        prompts = reference.texts([t.replace("{c}", name) for t in TEMPLATES])  # already unit rows
        mean = prompts.mean(axis=0)
        expected.append(mean / np.linalg.norm(mean))
    np.testing.assert_allclose(got, np.stack(expected), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)


def test_evaluate_matches_a_by_hand_classification(encoder, reference, tmp_path):
    for number, name in enumerate(["a", "b", "c"]):
        write_images(tmp_path / name, [(40, 30), (32, 32), (50, 80)], seed=number, prefix=name)
    write_corrupt(tmp_path / "b" / "zz-broken.jpg")
    images = class_folders(tmp_path, len(CLASSES))
    assert images.labels.tolist() == [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
    task = Task("toy", images, CLASSES, TEMPLATES)
    result = zeroshot.evaluate(encoder, [task], dataset="toy", model_name="tiny", batch_size=4)

    readable = [p for p in images.paths if p.name != "zz-broken.jpg"]
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    classifier = zeroshot.build_classifier(encoder, CLASSES, TEMPLATES, batch_size=4)
    scores = reference.images(readable) @ classifier.T
    predicted = scores.argmax(axis=1)
    assert result.metrics["acc1"] == pytest.approx(np.mean(predicted == labels))
    assert result.metrics["mean_per_class_recall"] == pytest.approx(
        np.mean([np.mean(predicted[labels == c] == c) for c in range(3)])
    )
    assert set(result.metrics) == {"acc1", "mean_per_class_recall"}  # top-5 of 3 classes is trivial
    assert result.counts == {"images": 9, "unreadable_images": 1, "classes": 3}
    assert result.task == "zeroshot_classification"


def test_several_tasks_are_prefixed_and_carry_chance(encoder, tmp_path):
    for name in ("a", "b"):
        write_images(tmp_path / name, [(32, 32), (40, 30)], prefix=name)
    images = class_folders(tmp_path, 2)
    tasks = [
        Task("colour", images, ["rosso", "verde"], ["un cerchio {c}"]),
        Task("shape", images, ["un cerchio", "una stella"], ["{c} blu"]),
    ]
    result = zeroshot.evaluate(encoder, tasks, dataset="synthetic", model_name="tiny", batch_size=4)
    assert result.metrics["colour/chance"] == 0.5 and result.metrics["shape/chance"] == 0.5
    assert {"colour/acc1", "shape/acc1", "colour/mean_per_class_recall"} <= set(result.metrics)


def test_imagenet_task_from_clip_italian_tsv_matches_wnid_folders(tmp_path):
    header = (SHARED / "imagenet_labels_IT.tsv").read_text(encoding="utf-8").splitlines()
    tsv = tmp_path / "labels.tsv"
    tsv.write_text("\n".join(header[:5]) + "\n", encoding="utf-8")  # header + the first 4 classes
    data = tmp_path / "val"
    write_images(data / "n01443537", [(32, 32)])  # class 1 only: a subset of the classes is fine
    write_images(data / "n01491361", [(32, 32), (40, 30)])  # class 3
    task = tasks.imagenet_task(
        data, classnames=tsv, templates=None, labels=None, cache_dir=tmp_path / "cache"
    )
    assert task.classnames == ["una tinca", "un pesce rosso", "un grande squalo bianco", "uno squalo tigre"]
    assert task.templates == ["{}"]  # CLIP-Italian's published setting
    assert task.images.labels.tolist() == [1, 3, 3]
    (data / "n99999999").mkdir()
    with pytest.raises(DataError, match="n99999999"):
        tasks.imagenet_task(data, classnames=tsv, templates=None, labels=None, cache_dir=tmp_path / "cache")


def test_imagenet_task_reads_default_templates_from_the_installed_package(tmp_path):
    # clip-benchmark is installed (a dev dependency, --no-deps): its copy is used, nothing is downloaded;
    # the download path itself is tested in test_classnames.
    server = Server(
        {
            "it_zeroshot_classification_templates.json": (
                SHARED / "it_zeroshot_classification_templates.json"
            ).read_bytes()
        }
    )
    try:
        names = tmp_path / "names.json"
        names.write_text(json.dumps({"imagenet1k": CLASSES}))
        for name in ("n1", "n2", "n3"):
            write_images(tmp_path / "val" / name, [(32, 32)])
        task = tasks.imagenet_task(
            tmp_path / "val",
            classnames=names,
            templates=None,
            labels=None,
            cache_dir=tmp_path / "cache",
            base_url=server.url,
        )
    finally:
        server.close()
    assert len(task.templates) == 49 and task.classnames == CLASSES
    assert server.requests == [] and not (tmp_path / "cache").exists()
    with pytest.raises(DataError, match="3 class folders but the class-name list has 2"):
        names.write_text(json.dumps({"imagenet1k": CLASSES[:2]}))
        tasks.imagenet_task(
            tmp_path / "val",
            classnames=names,
            templates=None,
            labels=None,
            cache_dir=tmp_path / "cache",
            base_url=server.url,
        )


def test_labels_file_forms(tmp_path):
    write_images(tmp_path / "flat", [(32, 32), (32, 32)], prefix="ILSVRC2012_val_")
    (tmp_path / "flat" / "ILSVRC2012_val_01.jpg").rename(tmp_path / "flat" / "ILSVRC2012_val_01.JPEG")
    plain = tmp_path / "labels.tsv"
    plain.write_text("ILSVRC2012_val_00.png\t2\nILSVRC2012_val_01.JPEG\t0\n")
    images = labels_file(plain, tmp_path / "flat", 3)
    assert images.labels.tolist() == [2, 0] and images.paths[1].name == "ILSVRC2012_val_01.JPEG"
    kaggle = tmp_path / "LOC_val_solution.csv"
    kaggle.write_text("ImageId,PredictionString\nILSVRC2012_val_01,n2 1 2 3 4 n2 5 6 7 8\n")
    images = labels_file(kaggle, tmp_path / "flat", 3, wnids=["n0", "n1", "n2"])
    assert images.labels.tolist() == [2] and images.paths[0].name == "ILSVRC2012_val_01.JPEG"
    bad = tmp_path / "bad.tsv"
    bad.write_text("a.png\t0\nb.png\t7\n")
    with pytest.raises(DataError, match="bad.tsv:2"):
        labels_file(bad, tmp_path / "flat", 3)
    escape = tmp_path / "escape.tsv"
    escape.write_text("../secret.png\t0\n")
    with pytest.raises(DataError, match="leaves the data folder"):
        labels_file(escape, tmp_path / "flat", 3)
