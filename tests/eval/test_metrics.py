"""Ranking metrics on cases small enough to rank by hand."""

from __future__ import annotations

import numpy as np
import pytest

from clipit.eval import metrics


def one_hot_rows(indices, width):
    rows = np.zeros((len(indices), width), dtype=np.float32)
    rows[np.arange(len(indices)), indices] = 1.0
    return rows


def test_ranks_from_scores_by_hand():
    scores = np.array(
        [
            [0.9, 0.1, 0.5],  # positive 0: best -> rank 1
            [0.9, 0.1, 0.5],  # positive 2: 0.9 beats it -> rank 2
            [0.2, 0.3, 0.1],  # positive 2: both beat it -> rank 3
        ]
    )
    positive = np.array([[1, 0, 0], [0, 0, 1], [0, 0, 1]], dtype=bool)
    assert metrics.ranks_from_scores(scores, positive).tolist() == [1, 2, 3]


def test_ties_count_against_the_query():
    # Positive tied with one negative and below another: the tie is lost -> rank 3, not 2.
    scores = np.array([[0.5, 0.7, 0.5, 0.1]])
    positive = np.array([[1, 0, 0, 0]], dtype=bool)
    assert metrics.ranks_from_scores(scores, positive).tolist() == [3]
    # All scores equal (a collapsed model): every query ranks last, so recall@1 is 0.
    flat = np.zeros((4, 4))
    ranks = metrics.ranks_from_scores(flat, np.eye(4, dtype=bool))
    assert ranks.tolist() == [4, 4, 4, 4]
    assert metrics.recall_at_k(ranks, 1) == 0.0
    assert metrics.recall_at_k(ranks, 4) == 1.0


def test_several_positives_rank_by_the_best_one():
    # Two positives (0.2 and 0.6); only the 0.8 negative is above the best positive -> rank 2.
    scores = np.array([[0.2, 0.8, 0.6, 0.4]])
    positive = np.array([[1, 0, 1, 0]], dtype=bool)
    assert metrics.ranks_from_scores(scores, positive).tolist() == [2]


def test_query_without_positive_is_an_error():
    positives = metrics.pair_positives(np.array([[0, 0]]), 2)
    with pytest.raises(ValueError, match="query 1"):
        metrics.best_positive_ranks(np.ones((2, 2)), np.ones((2, 2)), positives)


def test_recall_and_mrr_by_hand():
    ranks = np.array([1, 2, 3, 7, 12])
    assert metrics.recall_at_k(ranks, 1) == pytest.approx(1 / 5)
    assert metrics.recall_at_k(ranks, 5) == pytest.approx(3 / 5)
    assert metrics.recall_at_k(ranks, 10) == pytest.approx(4 / 5)
    assert metrics.mrr_at_k(ranks, 1) == pytest.approx(1 / 5)
    assert metrics.mrr_at_k(ranks, 5) == pytest.approx((1 + 1 / 2 + 1 / 3) / 5)
    assert metrics.mrr_at_k(ranks, 10) == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 7) / 5)


def test_retrieval_with_several_captions_per_image():
    # 3 images (one-hot embeddings), 5 captions: captions 0,1 -> image 0; 2,3 -> image 1; 4 -> image 2.
    images = np.eye(3, dtype=np.float32)
    caption_image = np.array([0, 0, 1, 1, 2])
    # Caption embeddings point at the image named here (caption 1 and caption 4 are wrong).
    texts = one_hot_rows([0, 2, 1, 1, 0], 3) + one_hot_rows([1, 0, 0, 2, 1], 3) * 0.5
    # Scores caption x image:
    # c0 [1, .5, 0] pos 0 -> rank 1     c1 [.5, 0, 1] pos 0 -> rank 2     c2 [.5, 1, 0] pos 1 -> rank 1
    # c3 [0, 1, .5] pos 1 -> rank 1     c4 [1, .5, 0] pos 2 -> rank 3
    # Image -> text: image 0 scores captions [1, .5, .5, 0, 1] -> best positive 1 (c0); negative c4
    #   ties at 1 -> rank 2. image 1 scores [.5, 0, 1, 1, .5] -> best positive 1, no negative >= 1 -> 1.
    #   image 2 scores [0, 1, 0, .5, 0] -> positive c4 = 0; negatives >= 0: c0, c1, c2, c3 -> rank 5.
    got = metrics.retrieval_metrics(texts, caption_image, images, ks=(1, 2, 5))
    assert got["image_retrieval_recall@1"] == pytest.approx(3 / 5)
    assert got["image_retrieval_recall@2"] == pytest.approx(4 / 5)
    assert got["image_retrieval_recall@5"] == pytest.approx(1.0)
    assert got["image_retrieval_mrr@1"] == pytest.approx(3 / 5)
    assert got["image_retrieval_mrr@2"] == pytest.approx((3 + 1 / 2) / 5)
    assert got["image_retrieval_mrr@5"] == pytest.approx((3 + 1 / 2 + 1 / 3) / 5)
    assert got["text_retrieval_recall@1"] == pytest.approx(1 / 3)
    assert got["text_retrieval_recall@2"] == pytest.approx(2 / 3)
    assert got["text_retrieval_recall@5"] == pytest.approx(1.0)
    assert got["text_retrieval_mrr@2"] == pytest.approx((1 + 1 / 2) / 3)
    assert got["text_retrieval_mrr@5"] == pytest.approx((1 + 1 / 2 + 1 / 5) / 3)


def test_retrieval_ranks_match_a_naive_sort_on_random_data():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(7, 4))
    texts = rng.normal(size=(20, 4))
    caption_image = rng.integers(0, 7, size=20)
    caption_image[:7] = np.arange(7)  # every image has a caption
    ranks = metrics.best_positive_ranks(
        texts, images, metrics.label_positives(caption_image, np.arange(7)), chunk=3
    )
    for i, text in enumerate(texts):
        order = np.argsort(-(images @ text), kind="stable")
        assert ranks[i] == 1 + int(np.flatnonzero(order == caption_image[i])[0])
    i2t = metrics.best_positive_ranks(
        images, texts, metrics.label_positives(np.arange(7), caption_image), chunk=2
    )
    for j, image in enumerate(images):
        order = np.argsort(-(texts @ image), kind="stable")
        assert i2t[j] == 1 + int(np.flatnonzero(caption_image[order] == j)[0])


def test_zero_shot_metrics_by_hand():
    # 4 classes (unit axes), 5 images. Scores image x class are the image rows themselves.
    classifier = np.eye(4, dtype=np.float32)
    images = np.array(
        [
            [0.9, 0.1, 0.0, 0.0],  # class 0, rank 1
            [0.2, 0.8, 0.0, 0.0],  # class 0, rank 2
            [0.0, 0.9, 0.3, 0.0],  # class 1, rank 1
            [0.1, 0.2, 0.3, 0.4],  # class 2, rank 2
            [0.5, 0.4, 0.3, 0.2],  # class 3, rank 4
        ],
        dtype=np.float32,
    )
    labels = np.array([0, 0, 1, 2, 3])
    got = metrics.zero_shot_metrics(images, labels, classifier, ks=(1, 2, 3, 5))
    assert got["acc1"] == pytest.approx(2 / 5)
    assert got["acc2"] == pytest.approx(4 / 5)
    assert got["acc3"] == pytest.approx(4 / 5)
    assert "acc5" not in got  # k >= class count is trivially 1 and is left out
    # per class recall: class 0 1/2, class 1 1, class 2 0, class 3 0 -> mean 3/8
    assert got["mean_per_class_recall"] == pytest.approx(3 / 8)


def test_identical_captions_are_one_text_with_every_image_as_positive():
    # 3 images (unit axes). Captions: "gatto" on images 0 and 1, "cane" on image 2, and "gatto" again
    # on image 0 (the same image with the same caption twice counts once).
    images = np.eye(3, dtype=np.float32)
    captions = ["gatto", "gatto", "cane", "gatto"]
    caption_image = np.array([0, 1, 2, 0])
    gatto, cane = [0.0, 1.0, 0.0], [1.0, 0.0, 0.5]  # identical strings embed identically
    texts = np.array([gatto, gatto, cane, gatto], dtype=np.float32)
    # Texts T0 "gatto" (positives images 0, 1) and T1 "cane" (positive image 2).
    # text -> image: T0 scores [0, 1, 0], best positive image 1 -> rank 1; T1 scores [1, 0, .5],
    #   image 0 beats its positive -> rank 2.  2 queries, not 4 captions.
    # image -> text (T0, T1 each once): image 0 [0, 1] -> its T0 loses to T1, rank 2; image 1 [1, 0]
    #   -> rank 1; image 2 [0, .5] -> rank 1.
    got = metrics.retrieval_metrics(texts, caption_image, images, captions=captions, ks=(1, 2))
    assert got["image_retrieval_recall@1"] == pytest.approx(1 / 2)
    assert got["image_retrieval_mrr@2"] == pytest.approx((1 + 1 / 2) / 2)
    assert got["text_retrieval_recall@1"] == pytest.approx(2 / 3)
    assert got["text_retrieval_mrr@2"] == pytest.approx((1 / 2 + 1 + 1) / 3)
    # Without the rule each caption has its own image: "gatto" on image 0 loses to image 1 (captions
    # 0 and 3 rank 2), and the repeated "gatto" candidates push images 0 and 1 to rank 3.
    plain = metrics.retrieval_metrics(texts, caption_image, images, ks=(1, 2))
    assert plain["image_retrieval_recall@1"] == pytest.approx(1 / 4)
    assert plain["text_retrieval_mrr@2"] == pytest.approx((0 + 0 + 1) / 3)


def test_duplicate_captions_with_ties_count_once_against_the_query():
    # Image 0's only text T1 ties with "uguale" (on images 1 and 2): a tie is lost, but the repeated
    # string is one candidate, so the rank is 2, not 3.
    images = np.eye(3, dtype=np.float32)
    captions = ["diverso", "uguale", "uguale"]
    caption_image = np.array([0, 1, 2])
    texts = np.array([[1, 0, 0], [1, 1, 1], [1, 1, 1]], dtype=np.float32)
    got = metrics.retrieval_metrics(texts, caption_image, images, captions=captions, ks=(1, 2))
    # image -> text: image 0 [1, 1] -> rank 2; images 1, 2 [0, 1] -> rank 1.
    assert got["text_retrieval_recall@1"] == pytest.approx(2 / 3)
    assert got["text_retrieval_recall@2"] == pytest.approx(1.0)
    # text -> image: "diverso" [1, 0, 0] -> rank 1; "uguale" [1, 1, 1] positives 1, 2 tie with image 0 -> 2.
    assert got["image_retrieval_recall@1"] == pytest.approx(1 / 2)
    assert got["image_retrieval_recall@2"] == pytest.approx(1.0)


def test_without_duplicates_retrieval_equals_clip_benchmark():
    import torch

    from tests.eval.clip_benchmark_code import function

    recall_at_k = function("metrics/zeroshot_retrieval.py", "recall_at_k")
    rng = np.random.default_rng(3)
    images = rng.normal(size=(9, 6)).astype(np.float32)
    texts = rng.normal(size=(25, 6)).astype(np.float32)
    caption_image = np.concatenate([np.arange(9), rng.integers(0, 9, size=16)])
    captions = [f"didascalia {i}" for i in range(25)]  # all distinct
    ours = metrics.retrieval_metrics(texts, caption_image, images, captions=captions, ks=(1, 3, 5))
    scores = torch.from_numpy(texts @ images.T)  # clip_benchmark: texts x images
    positive = torch.zeros_like(scores, dtype=torch.bool)
    positive[torch.arange(25), torch.from_numpy(caption_image)] = True
    for k in (1, 3, 5):  # clip_benchmark's own reduction: recall > 0 per query, averaged
        assert ours[f"image_retrieval_recall@{k}"] == pytest.approx(
            (recall_at_k(scores, positive, k) > 0).float().mean().item()
        )
        assert ours[f"text_retrieval_recall@{k}"] == pytest.approx(
            (recall_at_k(scores.T, positive.T, k) > 0).float().mean().item()
        )


def test_without_ties_zero_shot_equals_clip_benchmark():
    import torch

    rng = np.random.default_rng(4)
    classifier = rng.normal(size=(7, 5)).astype(np.float32)
    images = rng.normal(size=(40, 5)).astype(np.float32)
    labels = np.concatenate([np.arange(7), rng.integers(0, 7, size=33)])
    ours = metrics.zero_shot_metrics(images, labels, classifier, ks=(1, 5))
    # clip_benchmark's `accuracy` (metrics/zeroshot_classification.py), whose last line calls float()
    # on a 1-element array, which numpy 2 refuses; the same top-k count without that conversion:
    logits, target = torch.from_numpy(images @ classifier.T), torch.from_numpy(labels)
    pred = logits.topk(5, 1, True, True)[1].t()
    correct = pred.eq(target.view(1, -1).expand_as(pred))
    for k in (1, 5):
        assert ours[f"acc{k}"] == pytest.approx(correct[:k].reshape(-1).float().sum().item() / len(labels))
    # clip_benchmark's mean_per_class_recall is sklearn's balanced accuracy of the argmax, by hand here:
    pred = (images @ classifier.T).argmax(axis=1)
    balanced = np.mean([(pred[labels == c] == c).mean() for c in range(7)])
    assert ours["mean_per_class_recall"] == pytest.approx(balanced)


def test_ranks_from_scores_is_the_same_under_jax_jit():
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(5)
    scores = np.round(rng.normal(size=(6, 6)), 1).astype(np.float32)  # rounding makes ties
    scores[2, 4] = scores[2, 2]
    positive = np.eye(6, dtype=bool)
    positive[0, 3] = True
    counted = np.array([True, True, True, False, True, True])
    on_host = metrics.ranks_from_scores(scores, positive, counted)
    on_device = jax.jit(metrics.ranks_from_scores)(
        jnp.asarray(scores), jnp.asarray(positive), jnp.asarray(counted)
    )
    assert np.asarray(on_device).tolist() == on_host.tolist()
