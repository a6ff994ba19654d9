"""Losses against naive numpy loops, and global-batch negatives on an 8-device mesh."""

from __future__ import annotations

import jax
import numpy as np
import pytest

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
    assert float(losses.infonce(image, text, np.float32(10.0), np.arange(9))[0]) == pytest.approx(expected, rel=1e-5)
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
    assert float(losses.logit_scale_value(np.float32(np.log(500.0)), max_scale=100.0, fixed=None)) == pytest.approx(100.0)
    assert float(losses.logit_scale_value(np.float32(np.log(3.0)), max_scale=100.0, fixed=None)) == pytest.approx(3.0)
    assert float(losses.logit_scale_value(np.float32(1.0), max_scale=100.0, fixed=20.0)) == 20.0


def test_retrieval_hits_match_naive_ranks():
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(10, 10)).astype(np.float32)
    ids = np.array([0, 1, 2, 3, 3, 5, 6, 7, 8, 9])
    hits = losses.retrieval_hits(logits, ids, ks=(1, 3))
    for name, scores in (("i2t", logits), ("t2i", logits.T)):
        for k in (1, 3):
            expected = np.mean(
                [any(ids[j] == ids[i] for j in np.argsort(-scores[i])[:k]) for i in range(10)]
            )
            assert float(hits[f"{name}_r@{k}"]) == pytest.approx(expected)


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
    per_device = np.mean([naive_infonce(image[s:s + 4], text[s:s + 4], 8.0, ids[s:s + 4]) for s in range(0, 32, 4)])
    assert float(loss) == pytest.approx(whole, rel=1e-5)
    assert abs(whole - per_device) > 0.1  # the two definitions really differ on this data
