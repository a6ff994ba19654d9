"""`[translate]`: machine translation of `caption_en` into the target language.

Secrets: API keys are read only from the environment variable named by `api_key_env`, never from the
config. Credentials inside `endpoint` (`http://user:password@host/` or `?api_key=...`) work, but wherever
the config is written out (`config.resolved.toml`, `clipit config show`) they appear as `***`.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from pydantic import Field, field_serializer

from clipit.config.base import Section

PLACEHOLDER = "***"


def public_endpoint(url: str) -> str:
    """The URL with its user, password and query values replaced: safe to print, store or key a cache by."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:  # not parseable: nothing in it can be trusted to be public
        return PLACEHOLDER
    if ":" in host:
        host = f"[{host}]"  # IPv6
    netloc = (f"{PLACEHOLDER}@" if parts.username or parts.password else "") + host
    netloc += f":{port}" if port is not None else ""
    query = "&".join(f"{name}={PLACEHOLDER}" for name, _ in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


class TranslateConfig(Section):
    input: Path | None = Field(None, description="Manifest whose caption_en is translated.")
    output: Path | None = Field(None, description="Manifest written (default: overwrite the input).")
    to: str = Field("it", description="Target language code.")
    source_lang: str = Field("en", description="Source language code.")
    backend: str = Field(
        "google", description="google, deepl, microsoft, libre, mymemory (deep-translator) or marian."
    )
    endpoint: str | None = Field(None, description="Server URL for the libre backend.")
    api_key_env: str = Field(
        "CLIPIT_TRANSLATE_API_KEY", description="Environment variable holding the provider's API key."
    )
    cache: Path = Field(
        Path("~/.cache/clipit/translations.sqlite"), description="Persistent translation cache."
    )
    max_chars_per_request: int = Field(
        4999, ge=1, description="Characters packed into one request (capped by the provider's own limit)."
    )
    separator: str = Field(
        "\n", min_length=1, description="Joins packed captions; a reply that does not split back falls back."
    )
    concurrency: int = Field(4, ge=1, description="Requests in flight at once.")
    requests_per_second: float = Field(5.0, gt=0, description="Rate limit across all requests.")
    timeout: float = Field(30.0, gt=0, description="Seconds before one request gives up.")
    retries: int = Field(5, ge=0, description="Retries on 429, 5xx and connection errors.")
    backoff: float = Field(1.0, ge=0, description="First retry delay in seconds (doubles each time).")
    marian_model: str = Field(
        "Helsinki-NLP/opus-mt-en-it", description="MarianMT hub id or folder for the marian backend."
    )
    batch_size: int = Field(32, ge=1, description="Captions per batch for the marian backend.")
    sample: int = Field(
        0, ge=0, description="Rows in a review sheet (CSV + HTML) beside the output; 0: none."
    )
    max_failed_fraction: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Share of rows that may fail before the run exits 2 (the work done is kept).",
    )

    @field_serializer("endpoint", when_used="json")
    def _endpoint_without_secrets(self, endpoint: str | None) -> str | None:
        # what is written out (config.resolved.toml, `clipit config show`) never carries credentials
        return public_endpoint(endpoint) if endpoint else endpoint
