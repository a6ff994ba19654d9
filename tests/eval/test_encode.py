"""clipit.encode against transformers' PyTorch model on the same tiny checkpoint and inputs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from clipit.encode import open_model
from clipit.errors import ModelError
from clipit.image_files import list_images
from tests.support.images import write_corrupt, write_images

TEXTS = [
    "una foto di un gatto rosso",
    "tre cerchi verdi e una stella gialla su sfondo bianco",
    "cane",
    "due quadrati blu sopra un triangolo",
    "una casa",
]


def test_images_match_pytorch(encoder, reference, tmp_path):
    paths = write_images(tmp_path)
    encoded = encoder.encode_images(paths, batch_size=4)  # 6 images: one full batch, one padded
    assert encoded.vectors.dtype == np.float32 and encoded.vectors.shape == (6, encoder.dim)
    assert encoded.kept.tolist() == list(range(6)) and encoded.failures == []
    np.testing.assert_allclose(encoded.vectors, reference.images(paths), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(encoded.vectors, axis=1), 1.0, atol=1e-6)


def test_texts_match_pytorch(encoder, reference):
    vectors = encoder.encode_texts(TEXTS, batch_size=2)
    assert vectors.dtype == np.float32 and vectors.shape == (len(TEXTS), encoder.dim)
    np.testing.assert_allclose(vectors, reference.texts(TEXTS), atol=1e-5)
    # A short text alone is padded to 8 tokens instead of the batch's longest: the same row.
    np.testing.assert_allclose(encoder.encode_texts([TEXTS[2]], batch_size=2)[0], vectors[2], atol=1e-6)


def test_unreadable_images_are_counted_not_fatal(encoder, tmp_path):
    good = write_images(tmp_path / "good", [(40, 30), (32, 32), (50, 80)])
    bad = write_corrupt(tmp_path / "bad.jpg")
    missing = tmp_path / "missing.png"
    encoded = encoder.encode_images([good[0], bad, good[1], missing, good[2]], batch_size=4)
    assert encoded.kept.tolist() == [0, 2, 4]
    assert [index for index, _ in encoded.failures] == [1, 3]
    assert "bad.jpg" in encoded.failures[0][1] and "missing.png" in encoded.failures[1][1]
    np.testing.assert_allclose(encoded.vectors, encoder.encode_images(good, batch_size=4).vectors, atol=1e-6)


def test_pil_images_equal_paths(encoder, tmp_path):
    paths = write_images(tmp_path, [(40, 30), (64, 64), (50, 80), (33, 47)])
    from_paths = encoder.encode_images(paths).vectors
    from_pil = encoder.encode_images([Image.open(p) for p in paths]).vectors
    np.testing.assert_allclose(from_pil, from_paths, atol=1e-6)


def test_bfloat16_images_are_close(tiny_model, encoder, tmp_path):
    paths = write_images(tmp_path, [(40, 30), (64, 64), (33, 47), (50, 80)])
    bf16 = open_model(str(tiny_model), dtype="bfloat16")
    assert bf16.dtype == "bfloat16"
    np.testing.assert_allclose(
        bf16.encode_images(paths).vectors, encoder.encode_images(paths).vectors, atol=3e-2
    )


def test_sizes_come_from_the_checkpoint(encoder):
    from tests.support import tiny_hf

    assert encoder.image_size == tiny_hf.IMAGE_SIZE
    assert encoder.max_text_length == tiny_hf.MAX_POSITIONS


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="no-such-model"):
        open_model(str(tmp_path / "no-such-model"))
    # A hub id that exists nowhere: offline or online, one clear error naming it.
    with pytest.raises(ModelError, match="clipit-tests/no-such-model-7f3a"):
        open_model("clipit-tests/no-such-model-7f3a")


def test_list_images_is_recursive_and_sorted(tmp_path):
    write_images(tmp_path / "b", [(8, 8)], prefix="z")
    write_images(tmp_path / "a" / "deep", [(8, 8), (8, 8)], prefix="y")
    write_images(tmp_path, [(8, 8)], prefix="c")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden").mkdir()
    write_images(tmp_path / ".hidden", [(8, 8)])
    found = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert found == ["a/deep/y00.png", "a/deep/y01.jpg", "b/z00.png", "c00.png"]


def test_texts_are_batched_by_length_and_returned_in_order(encoder, reference):
    """Long and short captions interleaved, batches of 2: sorted by length, each batch cut to its own
    bucket (8 or 32 tokens here), yet every row equals PyTorch's on the fully padded input, in input order."""
    from clipit.encode import _length_bucket

    texts = [TEXTS[1] + " " + TEXTS[3], "cane", TEXTS[1], "gatto", TEXTS[0], "una casa rossa"]
    vectors = encoder.encode_texts(texts, batch_size=2)
    np.testing.assert_allclose(vectors, reference.texts(texts), atol=1e-5)
    for index, text in enumerate(texts):  # each alone: its own shortest padding
        np.testing.assert_allclose(encoder.encode_texts([text])[0], vectors[index], atol=1e-6)
    assert [_length_bucket(n) for n in (1, 8, 9, 16, 17, 32, 33, 64, 65, 128)] == [
        8,
        8,
        16,
        16,
        32,
        32,
        64,
        64,
        96,
        128,
    ]
