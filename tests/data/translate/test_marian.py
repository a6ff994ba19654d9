"""The marian backend with a tiny random MarianMT checkpoint, against transformers run directly."""

from __future__ import annotations

import socket
import time

import pytest
import torch
from transformers import AutoTokenizer, MarianMTModel, MarianTokenizer
from typer.testing import CliRunner

from clipit.cli.main import app
from clipit.config.translate import TranslateConfig
from clipit.data import manifest
from clipit.data.translate import run
from clipit.data.translate.marian import model_languages
from clipit.errors import ModelError
from tests.data.translate.tiny_marian import make_tiny_marian, make_tiny_marian_spm
from tests.support.translate_data import write_manifest

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


def _cli(tmp_path, *args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(
        app,
        ["translate", "--input", str(tmp_path / "in.parquet"), "--backend", "marian",
         "--set", f"translate.cache={tmp_path / 'cache.sqlite'}", *args],
        env=env,
    )  # fmt: skip


@pytest.mark.parametrize(
    "model", ["folder", "Helsinki-NLP/opus-mt-en-it", "Helsinki-NLP/opus-mt-tc-big-eng-ita"]
)
def test_a_model_for_another_language_pair_is_refused_before_loading(tmp_path, model):
    if model == "folder":  # its tokenizer config says en -> it, as opus-mt folders do
        model = str(make_tiny_marian_spm(tmp_path / "marian"))
    write_manifest(tmp_path / "in.parquet", ["a red dog"])
    started = time.monotonic()
    result = _cli(tmp_path, "--to", "de", "--set", f"translate.marian_model={model}")
    assert result.exit_code == 2, result.output
    assert f"translate.marian_model {model} translates en -> it, not en -> de" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert time.monotonic() - started < 5  # refused from its name or config: nothing loaded or fetched
    assert manifest.read(tmp_path / "in.parquet").column("caption").null_count == 1


def test_model_languages_are_read_only_when_the_model_names_one_pair(tmp_path):
    assert model_languages("Helsinki-NLP/opus-mt-en-it") == ("en", "it")
    assert model_languages("Helsinki-NLP/opus-mt-en-ROMANCE") is None  # many targets: not refused
    assert model_languages(str(make_tiny_marian(tmp_path / "word"))) is None  # no languages in its config


def test_an_uncached_hub_model_fails_at_once_offline(tmp_path, monkeypatch):
    with socket.socket() as sock:  # a port nobody listens on: the hub is unreachable
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    write_manifest(tmp_path / "in.parquet", ["a red dog"])
    started = time.monotonic()
    result = _cli(
        tmp_path, "--to", "it", "--set", "translate.marian_model=clipit-tests/opus-mt-en-it",
        env={"HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HOME": str(tmp_path / "hf")},
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "not in the local Hugging Face cache and the hub cannot be asked" in result.stderr
    assert f"127.0.0.1:{port} cannot be reached" in result.stderr
    assert time.monotonic() - started < 15  # huggingface_hub alone retries for about 50 s
