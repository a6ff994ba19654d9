"""The marian backend with a tiny random MarianMT checkpoint, against transformers run directly."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer, MarianMTModel, MarianTokenizer

from clipit.config.translate import TranslateConfig
from clipit.data import manifest
from clipit.data.translate import run
from clipit.errors import ModelError
from tests.data.translate.conftest import write_manifest
from tests.data.translate.tiny_marian import make_tiny_marian, make_tiny_marian_spm

ENGLISH = [
    "a red dog",
    "the cat on the big house",
    "a blue car in the park",
    "a red dog",  # a repeat: translated once
    "a man and a woman with a dog",
    "green tree",
    "the small street",
]


def _reference(folder, texts: list[str]) -> list[str]:
    """transformers itself, one text at a time (no padding)."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = MarianMTModel.from_pretrained(folder).eval()
    results = []
    with torch.no_grad():
        for text in texts:
            out = model.generate(**tokenizer([text], return_tensors="pt"))
            results.append(tokenizer.decode(out[0], skip_special_tokens=True).strip())
    return results


@pytest.mark.parametrize(
    ("make", "sentencepiece"),
    [(make_tiny_marian, False), (make_tiny_marian_spm, True)],
    ids=["word-level", "sentencepiece"],  # sentencepiece: the tokenizer opus-mt checkpoints ship
)
def test_marian_backend_matches_transformers_and_uses_the_cache(tmp_path, make, sentencepiece):
    folder = make(tmp_path / "marian")
    assert isinstance(AutoTokenizer.from_pretrained(folder), MarianTokenizer) == sentencepiece
    write_manifest(tmp_path / "in.parquet", ENGLISH)
    cfg = TranslateConfig(
        input=tmp_path / "in.parquet",
        output=tmp_path / "out.parquet",
        backend="marian",
        marian_model=str(folder),
        batch_size=4,
        cache=tmp_path / "cache.sqlite",
    )

    summary = run(cfg)

    rows = manifest.read(cfg.output).to_pylist()
    expected = _reference(folder, ENGLISH)
    assert [row["caption"] for row in rows] == expected  # batched with padding == one at a time
    assert len(set(expected)) == 6  # the random model's output depends on its input
    assert all(row["lang"] == "it" for row in rows)
    assert (summary.translated, summary.requests) == (6, 2)  # 6 unique texts in batches of 4

    again = run(cfg.model_copy(update={"output": tmp_path / "again.parquet"}))
    assert (again.translated, again.cached, again.requests) == (0, 6, 0)
    assert [row["caption"] for row in manifest.read(tmp_path / "again.parquet").to_pylist()] == expected


def test_marian_missing_model_is_a_model_error(tmp_path):
    write_manifest(tmp_path / "in.parquet", ["a red dog"])
    cfg = TranslateConfig(
        input=tmp_path / "in.parquet",
        backend="marian",
        marian_model=str(tmp_path / "no-such-model"),
        cache=tmp_path / "cache.sqlite",
    )
    with pytest.raises(ModelError, match="no-such-model"):
        run(cfg)
