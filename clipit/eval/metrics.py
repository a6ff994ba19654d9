"""Ranking metrics shared by zero-shot classification and retrieval (DESIGN §7).

Everything reduces to one question per query: at which rank does its best positive candidate appear?
A query (an image for zero-shot, a caption or an image for retrieval) is positive for a candidate when
their labels are equal: zero-shot queries carry the true class and candidates are the classes;
text->image queries carry their image index and candidates are the images; image->text queries carry
their own index and candidates (captions) carry the index of their image.

Ties count against the query: the rank is 1 + the number of negatives scoring at least as high as the
best positive. A degenerate model whose embeddings are all equal therefore scores zero, never a
flattering number that depends on the order of the candidates. (clip_benchmark uses torch.topk,
whose order among ties is unspecified; on real embeddings exact ties do not happen.)
"""

from __future__ import annotations

import numpy as np

# Enough queries per matrix product to keep memory bounded (chunk x candidates floats).
DEFAULT_CHUNK = 1024


def best_positive_ranks(
    queries: np.ndarray,
    query_labels: np.ndarray,
    candidates: np.ndarray,
    candidate_labels: np.ndarray,
    *,
    chunk: int = DEFAULT_CHUNK,
) -> np.ndarray:
    """1-based rank of each query's best positive candidate by dot-product score, ties against it.

    queries [Q, D], candidates [C, D], labels int [Q] and [C]. Raises ValueError when a query has no
    positive candidate (its rank would be undefined).
    """
    queries = np.asarray(queries, dtype=np.float32)
    candidates = np.asarray(candidates, dtype=np.float32)
    query_labels = np.asarray(query_labels)
    candidate_labels = np.asarray(candidate_labels)
    if queries.ndim != 2 or candidates.ndim != 2 or queries.shape[1] != candidates.shape[1]:
        raise ValueError(f"embedding shapes do not match: {queries.shape} vs {candidates.shape}")
    if len(query_labels) != len(queries) or len(candidate_labels) != len(candidates):
        raise ValueError("one label per query and per candidate is required")
    ranks = np.empty(len(queries), dtype=np.int64)
    for start in range(0, len(queries), chunk):
        stop = min(start + chunk, len(queries))
        scores = queries[start:stop] @ candidates.T
        ranks[start:stop] = ranks_from_scores(scores, query_labels[start:stop, None] == candidate_labels[None, :])
    return ranks


def ranks_from_scores(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """Rank of the best positive in each row of `scores` [Q, C] given a boolean `positive` mask [Q, C]."""
    has_positive = positive.any(axis=1)
    if not has_positive.all():
        missing = int(np.flatnonzero(~has_positive)[0])
        raise ValueError(f"query {missing} has no positive candidate")
    best = np.where(positive, scores, -np.inf).max(axis=1)
    beaten_or_tied = (scores >= best[:, None]) & ~positive
    return 1 + beaten_or_tied.sum(axis=1)


def recall_at_k(ranks: np.ndarray, k: int) -> float:
    """Share of queries whose best positive is within the top k."""
    return float(np.mean(np.asarray(ranks) <= k))


def mrr_at_k(ranks: np.ndarray, k: int) -> float:
    """Mean over queries of 1/rank when rank <= k, else 0 (CLIP-Italian's MRR@k)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    return float(np.mean(np.where(ranks <= k, 1.0 / ranks, 0.0)))


def mean_per_class_recall(ranks: np.ndarray, labels: np.ndarray) -> float:
    """Mean over the classes present in `labels` of the share of their samples ranked first.

    The same as clip_benchmark's balanced accuracy (sklearn's balanced_accuracy_score of the argmax).
    """
    labels = np.asarray(labels)
    correct = np.asarray(ranks) == 1
    return float(np.mean([correct[labels == c].mean() for c in np.unique(labels)]))


def zero_shot_metrics(
    image_embeddings: np.ndarray,
    labels: np.ndarray,
    classifier: np.ndarray,
    ks: tuple[int, ...] = (1, 5, 10, 100),
) -> dict[str, float]:
    """Top-k accuracy for each k below the class count (top-k of all classes is trivially 1) and
    mean per-class recall. `classifier` [n_classes, D] holds one unit vector per class."""
    n_classes = len(classifier)
    ranks = best_positive_ranks(image_embeddings, labels, classifier, np.arange(n_classes))
    metrics = {f"acc{k}": recall_at_k(ranks, k) for k in ks if k == 1 or k < n_classes}
    metrics["mean_per_class_recall"] = mean_per_class_recall(ranks, labels)
    return metrics


def retrieval_metrics(
    text_embeddings: np.ndarray,
    caption_image: np.ndarray,
    image_embeddings: np.ndarray,
    ks: tuple[int, ...] = (1, 5, 10),
) -> dict[str, float]:
    """Recall@k and MRR@k both ways, named as clip_benchmark names them.

    `caption_image[i]` is the index (row of image_embeddings) of caption i's image. image_retrieval =
    text->image (one positive per caption); text_retrieval = image->text (an image is found when any
    of its captions is in the top k). Every image needs at least one caption.
    """
    caption_image = np.asarray(caption_image)
    image_ids = np.arange(len(image_embeddings))
    t2i = best_positive_ranks(text_embeddings, caption_image, image_embeddings, image_ids)
    i2t = best_positive_ranks(image_embeddings, image_ids, text_embeddings, caption_image)
    metrics: dict[str, float] = {}
    for k in ks:
        metrics[f"image_retrieval_recall@{k}"] = recall_at_k(t2i, k)
        metrics[f"text_retrieval_recall@{k}"] = recall_at_k(i2t, k)
    for k in ks:
        metrics[f"image_retrieval_mrr@{k}"] = mrr_at_k(t2i, k)
        metrics[f"text_retrieval_mrr@{k}"] = mrr_at_k(i2t, k)
    return metrics
