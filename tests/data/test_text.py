"""Tokenizer loading and tokenisation: round trip, padding, truncation, caption ids, clear errors."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from clipit.data.text import caption_ids, load_tokenizer, tokenize
from clipit.errors import ModelError
from tests.support.loader_data import SPECIALS, WORDS, save_tokenizer


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return load_tokenizer(save_tokenizer(tmp_path_factory.mktemp("tok")))


def test_round_trip_without_unknown_tokens(tokenizer):
    sentence = "Due gatti rossi a sinistra su sfondo nero"  # "rossi" is not in the vocabulary
    ids, mask = tokenize(tokenizer, [sentence.replace("rossi", "rosso")], max_length=16)
    used = ids[0][mask[0] == 1]
    assert tokenizer.unk_token_id not in used.tolist()
    # [CLS] w1 ... w8 [SEP]: one id per known word, in order.
    assert tokenizer.convert_ids_to_tokens(used.tolist()) == [
        "[CLS]",
        *"due gatti rosso a sinistra su sfondo nero".split(),
        "[SEP]",
    ]
    assert (
        tokenizer.decode(used.tolist(), skip_special_tokens=True)
        == "due gatti rosso a sinistra su sfondo nero"
    )
    unknown, _ = tokenize(tokenizer, [sentence], max_length=16)
    assert tokenizer.unk_token_id in unknown[0].tolist()  # the check above can fail


def test_padding_and_truncation(tokenizer):
    ids, mask = tokenize(tokenizer, ["un gatto", "un gatto rosso a destra su sfondo nero"], max_length=6)
    assert ids.shape == mask.shape == (2, 6) and ids.dtype == mask.dtype == np.int32
    vocab = {token: i for i, token in enumerate(SPECIALS + WORDS)}
    assert ids[0].tolist() == [vocab["[CLS]"], vocab["un"], vocab["gatto"], vocab["[SEP]"], 0, 0]
    assert mask[0].tolist() == [1, 1, 1, 1, 0, 0]
    assert ids[1].tolist() == [
        vocab["[CLS]"],
        vocab["un"],
        vocab["gatto"],
        vocab["rosso"],
        vocab["a"],
        vocab["[SEP]"],
    ]
    assert mask[1].tolist() == [1] * 6


def test_caption_ids_equal_exactly_for_identical_token_sequences(tokenizer):
    texts = ["un gatto rosso", "Un  GATTO rosso", "un gatto blu", "un gatto rosso a destra", "un gatto rosso"]
    ids, mask = tokenize(tokenizer, texts, max_length=5)  # the 4th is truncated to the 1st's tokens
    hashes = caption_ids(ids, mask)
    assert hashes.dtype == np.int64
    assert hashes[0] == hashes[1] == hashes[4]  # uncased tokenizer: case and spacing do not matter
    assert hashes[0] != hashes[2]
    ids6, mask6 = tokenize(tokenizer, texts, max_length=6)
    assert caption_ids(ids6, mask6)[3] != caption_ids(ids6, mask6)[0]  # untruncated, they differ
    # Stable across processes and runs: a fixed function of the token ids, not Python's hash().
    row = (ids[2].astype(np.int64) * mask[2]).astype("<i8").tobytes()
    expected = int.from_bytes(hashlib.blake2b(row, digest_size=8).digest(), "little", signed=True)
    assert hashes[2] == expected


def test_load_tokenizer_errors(tmp_path):
    with pytest.raises(ModelError, match="does not exist") as error:
        load_tokenizer(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in error.value.message
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no tokenizer files"):
        load_tokenizer(tmp_path / "empty")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ModelError, match="is a file"):
        load_tokenizer(tmp_path / "file.txt")
