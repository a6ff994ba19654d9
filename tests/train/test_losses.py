"""Losses against naive numpy loops, and global-batch negatives on an 8-device mesh."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from clipit.eval.metrics import retrieval_metrics
from clipit.train import losses
from clipit.train.mesh import batch_sharded, data_mesh, put_batch


def _unit(rng, n, d):
    x = rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def naive_infonce(image, text, scale, ids):
    n = len(image)
    logits = scale * image.astype(np.float64) @ text.astype(np.float64).T
    total = 0.0
    for direction in (logits, logits.T):
        for i in range(n):
            row = direction[i]
            log_z = np.log(np.sum(np.exp(row - row.max()))) + row.max()
            positives = [j for j in range(n) if ids[i] == ids[j]]
            total += -sum(row[j] - log_z for j in positives) / len(positives) / n
    return total / 2


def naive_siglip(image, text, scale, bias, ids):
    n = len(image)
    loss = 0.0
    for i in range(n):
        for j in range(n):
            z = 1.0 if ids[i] == ids[j] else -1.0
            logit = scale * float(image[i] @ text[j]) + bias
            loss += np.log1p(np.exp(-z * logit))
    return loss / n


def test_infonce_matches_naive_with_duplicate_captions():
    rng = np.random.default_rng(0)
    image, text = _unit(rng, 12, 8), _unit(rng, 12, 8)
    ids = np.array([0, 1, 2, 1, 3, 4, 4, 4, 5, 6, 7, 0])
    loss, logits = losses.infonce(image, text, np.float32(7.0), ids)
    assert float(loss) == pytest.approx(naive_infonce(image, text, 7.0, ids), rel=1e-5)
    assert logits.shape == (12, 12)


def test_infonce_distinct_ids_is_classic_clip_cross_entropy():
    rng = np.random.default_rng(1)
    image, text = _unit(rng, 9, 4), _unit(rng, 9, 4)
    logits = 10.0 * image.astype(np.float64) @ text.T.astype(np.float64)

    def ce(lg):
        return np.mean([-(lg[i, i] - np.log(np.exp(lg[i]).sum())) for i in range(len(lg))])

    expected = (ce(logits) + ce(logits.T)) / 2
    assert float(losses.infonce(image, text, np.float32(10.0), np.arange(9))[0]) == pytest.approx(
        expected, rel=1e-5
    )
    assert float(losses.infonce(image, text, np.float32(10.0), None)[0]) == pytest.approx(expected, rel=1e-5)


def test_multi_positive_changes_the_loss_when_captions_repeat():
    rng = np.random.default_rng(2)
    image, text = _unit(rng, 6, 4), _unit(rng, 6, 4)
    ids = np.array([0, 0, 1, 2, 3, 4])
    single = float(losses.infonce(image, text, np.float32(5.0), None)[0])
    multi = float(losses.infonce(image, text, np.float32(5.0), ids)[0])
    assert multi != pytest.approx(single, rel=1e-4)


def test_siglip_matches_naive():
    rng = np.random.default_rng(3)
    image, text = _unit(rng, 7, 5), _unit(rng, 7, 5)
    ids = np.array([0, 1, 1, 2, 3, 4, 5])
    loss, _ = losses.siglip(image, text, np.float32(10.0), np.float32(-3.0), ids)
    assert float(loss) == pytest.approx(naive_siglip(image, text, 10.0, -3.0, ids), rel=1e-5)


def test_logit_scale_is_clamped_or_fixed():
    assert float(
        losses.logit_scale_value(np.float32(np.log(500.0)), max_scale=100.0, fixed=None)
    ) == pytest.approx(100.0)
    assert float(
        losses.logit_scale_value(np.float32(np.log(3.0)), max_scale=100.0, fixed=None)
    ) == pytest.approx(3.0)
    assert float(losses.logit_scale_value(np.float32(1.0), max_scale=100.0, fixed=20.0)) == 20.0


def test_retrieval_hits_equal_eval_metrics_with_duplicates_and_ties():
    # Validation's in-batch numbers are clipit eval's on the same embeddings: identical captions (equal
    # ids, identical embeddings) are one text with every image that has it as positive, ties lost.
    rng = np.random.default_rng(4)
    ids = np.array([0, 1, 2, 3, 3, 5, 6, 3, 8, 9])
    image = np.round(_unit(rng, 10, 4), 1)  # rounded: exact ties happen
    text = np.round(_unit(rng, 10, 4), 1)
    text[[4, 7]] = text[3]  # the same caption three times
    image[6] = image[2]  # two images score every text alike
    logits = image @ text.T
    hits = losses.retrieval_hits(logits, ids, ks=(1, 3))
    expected = retrieval_metrics(text, np.arange(10), image, captions=[str(i) for i in ids], ks=(1, 3))
    for k in (1, 3):
        assert float(hits[f"i2t_r@{k}"]) == pytest.approx(expected[f"text_retrieval_recall@{k}"])
        assert float(hits[f"t2i_r@{k}"]) == pytest.approx(expected[f"image_retrieval_recall@{k}"])
    jitted = jax.jit(losses.retrieval_hits, static_argnames="ks")(logits, ids, ks=(1, 3))
    assert {k: float(v) for k, v in jitted.items()} == pytest.approx({k: float(v) for k, v in hits.items()})


def test_retrieval_hits_treat_rows_of_one_image_as_one_image():
    # Several captions of one image in a batch (image_id equal): one image, not copies that tie with it.
    rng = np.random.default_rng(6)
    image_group = np.array([0, 0, 1, 2, 2, 2, 3, 4])  # which image each row shows
    ids = np.array([10, 11, 12, 13, 11, 14, 12, 15])  # captions 11 and 12 belong to two images each
    images = np.round(_unit(rng, 5, 4), 1)
    texts = {i: np.round(_unit(rng, 1, 4), 1)[0] for i in set(ids.tolist())}
    text = np.stack([texts[i] for i in ids])
    logits = images[image_group] @ text.T
    hits = losses.retrieval_hits(logits, ids, ks=(1, 2), image_id=image_group)
    expected = retrieval_metrics(text, image_group, images, captions=[str(i) for i in ids], ks=(1, 2))
    for k in (1, 2):
        assert float(hits[f"i2t_r@{k}"]) == pytest.approx(expected[f"text_retrieval_recall@{k}"])
        assert float(hits[f"t2i_r@{k}"]) == pytest.approx(expected[f"image_retrieval_recall@{k}"])
    # a perfect model: each image's own texts score 1, others 0 -> every recall@1 is 1 with image ids,
    # while without them the copies of an image tie with it and text->image recall@1 collapses
    own = (image_group[:, None] == image_group[None, :]).astype(np.float32)
    perfect = losses.retrieval_hits(own, np.arange(8), ks=(1,), image_id=image_group)
    assert float(perfect["i2t_r@1"]) == 1.0 and float(perfect["t2i_r@1"]) == 1.0
    # (only rows 2, 6 and 7 show an image no other row shows)
    assert float(losses.retrieval_hits(own, np.arange(8), ks=(1,))["t2i_r@1"]) == pytest.approx(3 / 8)


def test_retrieval_hits_count_a_repeated_caption_once():
    # Image 0's caption ties with caption "7" that images 1 and 2 both have: one tie, rank 2 (not 3).
    logits = np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 1.0], [0.0, 1.0, 1.0]], dtype=np.float32)
    hits = losses.retrieval_hits(logits, np.array([4, 7, 7]), ks=(1, 2))
    assert float(hits["i2t_r@1"]) == pytest.approx(2 / 3)
    assert float(hits["i2t_r@2"]) == pytest.approx(1.0)
    # texts "4" (column 0: images [1, 0, 0] -> rank 1) and "7" (column 1: [1, 1, 1], tie with image 0 -> 2)
    assert float(hits["t2i_r@1"]) == pytest.approx(1 / 2)
    # without ids every caption is its own text: image 0 loses two ties -> rank 3
    assert float(losses.retrieval_hits(logits, None, ks=(2,))["i2t_r@2"]) == pytest.approx(2 / 3)


def test_negatives_come_from_the_global_batch_on_eight_devices():
    """Sharded over 8 devices, the jitted loss equals numpy on the whole batch, not a per-device mean."""
    assert jax.device_count() == 8, "run with XLA_FLAGS=--xla_force_host_platform_device_count=8"
    rng = np.random.default_rng(5)
    image, text = _unit(rng, 32, 8), _unit(rng, 32, 8)
    ids = np.arange(32) % 29  # a few repeated captions, some across devices
    mesh = data_mesh()
    batch = put_batch(mesh, {"image": image, "text": text, "ids": ids})
    assert batch["image"].sharding == batch_sharded(mesh)
    loss = jax.jit(lambda b: losses.infonce(b["image"], b["text"], 8.0, b["ids"])[0])(batch)
    whole = naive_infonce(image, text, 8.0, ids)
    per_device = np.mean(
        [naive_infonce(image[s : s + 4], text[s : s + 4], 8.0, ids[s : s + 4]) for s in range(0, 32, 4)]
    )
    assert float(loss) == pytest.approx(whole, rel=1e-5)
    assert abs(whole - per_device) > 0.1  # the two definitions really differ on this data
