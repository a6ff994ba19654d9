"""Ranking metrics shared by zero-shot classification, retrieval and training validation.

Everything reduces to one question per query: at which rank does its best positive candidate appear?
Zero-shot queries are images and their one positive is their class. Retrieval queries and candidates are
texts and images, and a caption string that several images share is one text whose positives are all of
those images, in both directions: a text->image query is found when any of its images is in the top k,
an image->text query when any of its texts is, and a repeated caption is neither a second query nor a
second candidate (it would count the same text twice).

Ties count against the query: the rank is 1 + the number of negatives scoring at least as high as the
best positive. A degenerate model whose embeddings are all equal therefore scores zero, never a
flattering number that depends on the order of the candidates. (clip_benchmark uses torch.topk,
whose order among ties is unspecified; without ties the numbers are the same.)

`ranks_from_scores` is written for numpy and jax.numpy alike, so training validation (inside a jitted
step) and `clipit eval` (on host) rank with the same code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

# Enough queries per matrix product to keep memory bounded (chunk x candidates floats).
DEFAULT_CHUNK = 1024


def ranks_from_scores(scores, positive, counted=None):
    """1-based rank of the best positive in each row of `scores` [Q, C], ties against the query.

    `positive` [Q, C] bool marks each query's positives; `counted` [C] bool, when given, leaves out
    candidates that are repeats of an earlier one (they are the same text and must not count twice).
    Works on numpy arrays and on jax arrays (also inside jit); a row without any positive gets
    1 + its number of counted negatives (callers on host check for that first).
    """
    xp = np if isinstance(scores, np.ndarray) else _jnp()
    best = xp.max(xp.where(positive, scores, -xp.inf), axis=1)
    beaten_or_tied = (scores >= best[:, None]) & ~positive
    if counted is not None:
        beaten_or_tied = beaten_or_tied & counted[None, :]
    return 1 + xp.sum(beaten_or_tied, axis=1)


def _jnp():
    import jax.numpy as jnp  # only when a jax array comes in: eval on host never needs jax here

    return jnp


def best_positive_ranks(
    queries: np.ndarray,
    candidates: np.ndarray,
    positives: Callable[[int, int], np.ndarray],
    *,
    chunk: int = DEFAULT_CHUNK,
) -> np.ndarray:
    """Ranks of every query against every candidate by dot product, `chunk` queries at a time.

    `positives(start, stop)` returns the bool mask [stop - start, C] of those queries' positives.
    Raises ValueError when a query has no positive candidate (its rank would be undefined).
    """
    queries = np.asarray(queries, dtype=np.float32)
    candidates = np.asarray(candidates, dtype=np.float32)
    if queries.ndim != 2 or candidates.ndim != 2 or queries.shape[1] != candidates.shape[1]:
        raise ValueError(f"embedding shapes do not match: {queries.shape} vs {candidates.shape}")
    ranks = np.empty(len(queries), dtype=np.int64)
    for start in range(0, len(queries), chunk):
        stop = min(start + chunk, len(queries))
        positive = positives(start, stop)
        has_positive = positive.any(axis=1)
        if not has_positive.all():
            raise ValueError(
                f"query {start + int(np.flatnonzero(~has_positive)[0])} has no positive candidate"
            )
        ranks[start:stop] = ranks_from_scores(queries[start:stop] @ candidates.T, positive)
    return ranks


def label_positives(
    query_labels: np.ndarray, candidate_labels: np.ndarray
) -> Callable[[int, int], np.ndarray]:
    """Positives by equal labels (zero-shot: an image's class)."""
    query_labels, candidate_labels = np.asarray(query_labels), np.asarray(candidate_labels)
    return lambda start, stop: query_labels[start:stop, None] == candidate_labels[None, :]


def pair_positives(pairs: np.ndarray, n_candidates: int) -> Callable[[int, int], np.ndarray]:
    """Positives from (query, candidate) index pairs [P, 2] (retrieval: which images a text describes)."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)

    def mask(start: int, stop: int) -> np.ndarray:
        out = np.zeros((stop - start, n_candidates), dtype=bool)
        inside = (pairs[:, 0] >= start) & (pairs[:, 0] < stop)
        out[pairs[inside, 0] - start, pairs[inside, 1]] = True
        return out

    return mask


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
    labels = np.asarray(labels)
    if len(labels) != len(image_embeddings):
        raise ValueError("one label per image is required")
    ranks = best_positive_ranks(image_embeddings, classifier, label_positives(labels, np.arange(n_classes)))
    metrics = {f"acc{k}": recall_at_k(ranks, k) for k in ks if k == 1 or k < n_classes}
    metrics["mean_per_class_recall"] = mean_per_class_recall(ranks, labels)
    return metrics


def unique_texts(captions: Sequence[str], caption_image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Identical caption strings as one text: (first caption index of each text, (text, image) pairs).

    Texts are in order of first appearance; the pairs list every image each text describes, once.
    """
    text_of: dict[str, int] = {}
    first: list[int] = []
    pairs: set[tuple[int, int]] = set()
    for index, (caption, image) in enumerate(zip(captions, np.asarray(caption_image).tolist(), strict=True)):
        if caption not in text_of:
            text_of[caption] = len(first)
            first.append(index)
        pairs.add((text_of[caption], int(image)))
    return np.asarray(first, dtype=np.int64), np.asarray(sorted(pairs), dtype=np.int64).reshape(-1, 2)


def retrieval_metrics(
    text_embeddings: np.ndarray,
    caption_image: np.ndarray,
    image_embeddings: np.ndarray,
    captions: Sequence[str] | None = None,
    ks: tuple[int, ...] = (1, 5, 10),
) -> dict[str, float]:
    """Recall@k and MRR@k both ways, named as clip_benchmark names them.

    `caption_image[i]` is the index (row of image_embeddings) of caption i's image; `captions` are the
    caption strings (without them every caption is its own text). image_retrieval = text->image (a text
    is found when any image it describes is in the top k); text_retrieval = image->text (an image is
    found when any of its texts is in the top k). Every image needs at least one caption.
    """
    caption_image = np.asarray(caption_image, dtype=np.int64)
    if len(caption_image) != len(text_embeddings):
        raise ValueError("one image index per caption is required")
    if captions is None:
        first, pairs = (
            np.arange(len(caption_image)),
            np.stack([np.arange(len(caption_image)), caption_image], 1),
        )
    else:
        first, pairs = unique_texts(captions, caption_image)
    texts = np.asarray(text_embeddings)[first]
    t2i = best_positive_ranks(texts, image_embeddings, pair_positives(pairs, len(image_embeddings)))
    i2t = best_positive_ranks(image_embeddings, texts, pair_positives(pairs[:, ::-1], len(texts)))
    metrics: dict[str, float] = {}
    for k in ks:
        metrics[f"image_retrieval_recall@{k}"] = recall_at_k(t2i, k)
        metrics[f"text_retrieval_recall@{k}"] = recall_at_k(i2t, k)
    for k in ks:
        metrics[f"image_retrieval_mrr@{k}"] = mrr_at_k(t2i, k)
        metrics[f"text_retrieval_mrr@{k}"] = mrr_at_k(i2t, k)
    return metrics
