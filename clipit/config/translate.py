"""`[translate]`: machine translation of `caption_en` into the target language."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from clipit.config.base import Section


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
    sample: int = Field(0, ge=0, description="Rows in a review sheet (CSV + HTML) beside the output; 0: none.")
