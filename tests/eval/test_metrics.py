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
    with pytest.raises(ValueError, match="query 1"):
        metrics.ranks_from_scores(np.ones((2, 2)), np.array([[1, 0], [0, 0]], dtype=bool))


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
    ranks = metrics.best_positive_ranks(texts, caption_image, images, np.arange(7), chunk=3)
    for i, text in enumerate(texts):
        order = np.argsort(-(images @ text), kind="stable")
        assert ranks[i] == 1 + int(np.flatnonzero(order == caption_image[i])[0])
    i2t = metrics.best_positive_ranks(images, np.arange(7), texts, caption_image, chunk=2)
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
