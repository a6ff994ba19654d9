"""Keeping secrets out of everything translate writes: messages, manifests, review sheets, caches.

A provider's error text can carry what we sent it: deep-translator's `AuthorizationException` repeats
the API key, and `requests` repeats URLs with their credentials. Every secret the config gives access to
(the API key in `translate.api_key_env`, the user and password of an endpoint URL, the values of its
query string) is replaced by `***` in any text that leaves a backend, in raw and percent-encoded form.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

from clipit.config.translate import PLACEHOLDER, TranslateConfig

MIN_LENGTH = 4  # shorter values protect nothing, and replacing every "u" or "ab" would garble messages


def secrets_of(cfg: TranslateConfig) -> tuple[str, ...]:
    """Every secret the config leads to, longest first (so a key inside another is not half-replaced)."""
    found: set[str] = set()
    key = os.environ.get(cfg.api_key_env)
    if key:
        found.add(key)
    if cfg.endpoint:
        parts = urlsplit(cfg.endpoint)
        found.update(unquote(value) for value in (parts.username, parts.password) if value)
        found.update(value for _, value in parse_qsl(parts.query) if value)
    found = {secret for secret in found if len(secret) >= MIN_LENGTH}
    forms = {form for secret in found for form in (secret, quote(secret, safe=""), quote_plus(secret))}
    return tuple(sorted(forms, key=len, reverse=True))


def redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        text = text.replace(secret, PLACEHOLDER)
    return text
