"""Backend settings checked before any request, and the timeout transport inside deep-translator."""

from __future__ import annotations

import threading

import pytest
from deep_translator import libre

from clipit.config.translate import TranslateConfig
from clipit.data.translate.providers import TRANSPORT, PermanentError, Provider, TransientError, provider_spec
from clipit.errors import ConfigError


def test_packing_limit_is_capped_by_the_provider():
    assert provider_spec(TranslateConfig(backend="google", max_chars_per_request=20000)).max_chars == 4999
    assert provider_spec(TranslateConfig(backend="mymemory")).max_chars == 499
    assert provider_spec(TranslateConfig(backend="google", max_chars_per_request=800)).max_chars == 800
    spec = provider_spec(
        TranslateConfig(backend="libre", endpoint="http://x:5000", max_chars_per_request=20000)
    )
    assert (spec.max_chars, spec.cache_name) == (20000, "libre:http://x:5000/")


def test_marian_cache_identity_is_the_model(tmp_path):
    assert provider_spec(TranslateConfig(backend="marian")).cache_name == "marian:Helsinki-NLP/opus-mt-en-it"
    spec = provider_spec(TranslateConfig(backend="marian", marian_model=str(tmp_path)))
    assert spec.cache_name == f"marian:{tmp_path.resolve()}"


def test_keyed_providers_need_the_key(monkeypatch):
    monkeypatch.delenv("CLIPIT_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"\$CLIPIT_TEST_KEY"):
        provider_spec(TranslateConfig(backend="microsoft", api_key_env="CLIPIT_TEST_KEY"))
    monkeypatch.setenv("CLIPIT_TEST_KEY", "secret")
    assert provider_spec(TranslateConfig(backend="deepl", api_key_env="CLIPIT_TEST_KEY")).max_chars == 4999


def test_errors_are_classified_by_status(server):
    provider = Provider(TranslateConfig(backend="libre", endpoint=server.url, timeout=5.0))
    assert provider.request("a red dog\nthe cat") == "[it] un rosso cane\n[it] il gatto"
    server.throttle_every = 1
    with pytest.raises(TransientError, match="HTTP 429") as info:
        provider.request("a dog")
    assert info.value.retry_after == 0.0
    server.throttle_every, server.reject = 0, {"bad"}
    with pytest.raises(PermanentError, match="HTTP 400") as refused:
        provider.request("bad")
    assert not refused.value.refused


def test_transport_only_changes_threads_that_opted_in(server):
    Provider(TranslateConfig(backend="libre", endpoint=server.url))
    assert libre.requests is TRANSPORT  # deep-translator's module now calls through the transport
    seen = {}

    def plain_thread():  # another user of deep-translator in the same process
        translator = libre.LibreTranslator(source="en", target="it", api_key="k", custom_url=server.url)
        seen["text"] = translator.translate("a cat")
        seen["status"] = TRANSPORT.last_status()

    thread = threading.Thread(target=plain_thread)
    thread.start()
    thread.join()
    assert seen == {"text": "[it] un gatto", "status": None}  # plain requests: nothing recorded
