"""deep-translator's providers behind one small interface, with what deep-translator lacks.

deep-translator 1.11.4 calls `requests.get/post` with no timeout and turns HTTP failures into a mix of
exception types (`TooManyRequests`, `RequestError`, `ServerException` even for a 429, raw `requests`
errors) that do not carry the status code. So inside its provider modules the name `requests` is bound
to `_Transport`: the same `get`/`post`, but with our timeout, one keep-alive session per thread and the
last status code and Retry-After remembered per thread. Threads that did not opt in (any other user of
deep-translator in the process) get plain `requests` behaviour.

`Provider.request(text)` is exactly one HTTP request and raises `TransientError` (429, 5xx, connection
problems, timeouts: worth retrying) or `PermanentError` (anything else: a bad key, a text too long).
Every error leaving a `Provider` has the config's secrets replaced (see `redact`).
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from typing import Any

import requests

from clipit.config.translate import TranslateConfig, public_endpoint
from clipit.data.translate.marian import check_languages
from clipit.data.translate.redact import redact, secrets_of
from clipit.errors import ClipitError, ConfigError, NetworkError

DEEP_TRANSLATOR_BACKENDS = ("google", "deepl", "microsoft", "libre", "mymemory")
BACKENDS = (*DEEP_TRANSLATOR_BACKENDS, "marian")

# Characters one request may carry, from deep-translator's own checks (it refuses longer texts).
PROVIDER_MAX_CHARS = {"google": 4999, "mymemory": 499}
NEEDS_API_KEY = ("deepl", "microsoft")


class TransientError(Exception):
    """A failure worth retrying: 429, 5xx, a dropped connection, a timeout."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    """A failure that a retry would repeat (bad key, text too long, no translation found)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status

    @property
    def refused(self) -> bool:
        """The provider refuses us (bad or exhausted key): no other request would do better."""
        return self.status in (401, 402, 403)


class _Transport:
    """Stands in for the `requests` module inside deep-translator's provider modules."""

    def __init__(self) -> None:
        self._local = threading.local()

    def __getattr__(self, name: str) -> Any:  # requests.exceptions and anything else: the real module
        return getattr(requests, name)

    def configure(self, timeout: float) -> None:
        """Opt the calling thread in: its requests get this timeout and a keep-alive session."""
        self._local.timeout = timeout
        if getattr(self._local, "session", None) is None:
            self._local.session = requests.Session()

    def reset(self) -> None:
        self._local.status = None
        self._local.retry_after = None
        self._local.connection_failed = False

    def connection_failed(self) -> bool:
        """The last request never got an answer (some providers swallow that error and fail later)."""
        return getattr(self._local, "connection_failed", False)

    def last_status(self) -> int | None:
        return getattr(self._local, "status", None)

    def last_retry_after(self) -> float | None:
        return getattr(self._local, "retry_after", None)

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self._send("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        return self._send("POST", url, **kwargs)

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        timeout = getattr(self._local, "timeout", None)
        if timeout is None:
            return requests.request(method, url, **kwargs)
        kwargs.setdefault("timeout", timeout)
        try:
            response = self._local.session.request(method, url, **kwargs)
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout):
            self._local.connection_failed = True
            raise
        self._local.status = response.status_code
        self._local.retry_after = _seconds(response.headers.get("Retry-After"))
        return response


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: ignore it, exponential backoff still applies


TRANSPORT = _Transport()
_installed = False
_install_lock = threading.Lock()


def _install_transport() -> None:
    global _installed
    with _install_lock:
        if _installed:
            return
        from deep_translator import deepl, google, libre, microsoft, mymemory

        for module in (google, deepl, microsoft, libre, mymemory):
            module.requests = TRANSPORT  # type: ignore[attr-defined]
        _installed = True


@dataclass(frozen=True)
class ProviderSpec:
    """What the runner needs to know before any request: the cache identity and packing limit."""

    name: str
    cache_name: str
    max_chars: int


class Provider:
    """One deep-translator provider; `request` is safe to call from several threads."""

    def __init__(self, cfg: TranslateConfig):
        self.spec = provider_spec(cfg)
        self._cfg = cfg
        self._secrets = secrets_of(cfg)
        self._local = threading.local()
        try:
            self._translator()  # fail now on a bad language, key or endpoint, not in a worker thread
        except ClipitError as exc:
            hint = redact(exc.hint, self._secrets) if exc.hint else None
            raise type(exc)(redact(exc.message, self._secrets), hint) from None

    def _translator(self) -> Any:
        # deep-translator objects keep per-call state in `_url_params`: one object per thread
        translator = getattr(self._local, "translator", None)
        if translator is None:
            translator = self._local.translator = _make_translator(self._cfg)
        return translator

    def request(self, text: str) -> str:
        """Exactly one HTTP request translating `text`; its errors never carry a secret."""
        try:
            return self._request(text)
        except TransientError as exc:
            raise TransientError(redact(str(exc), self._secrets), exc.retry_after) from None
        except PermanentError as exc:
            raise PermanentError(redact(str(exc), self._secrets), exc.status) from None

    def _request(self, text: str) -> str:
        _install_transport()
        TRANSPORT.configure(self._cfg.timeout)
        TRANSPORT.reset()
        translator = self._translator()
        try:
            reply = translator.translate(text)
        except (requests.exceptions.Timeout, requests.exceptions.ConnectionError, ConnectionError) as exc:
            raise TransientError(_describe(exc)) from None
        except requests.exceptions.ChunkedEncodingError as exc:
            raise TransientError(f"connection broken: {_describe(exc)}") from None
        except Exception as exc:  # deep-translator's own types; the status code decides
            status = TRANSPORT.last_status()
            message = _describe(exc)
            if TRANSPORT.connection_failed():
                raise TransientError(f"connection failed ({message})") from None
            if status is not None and (status == 429 or status >= 500):
                raise TransientError(f"HTTP {status} ({message})", TRANSPORT.last_retry_after()) from None
            prefix = f"HTTP {status}: " if status is not None and status >= 400 else ""
            raise PermanentError(prefix + message, status) from None
        if not isinstance(reply, str):
            raise PermanentError(f"no translation in the reply (got {type(reply).__name__})")
        return reply


def _describe(exc: BaseException, limit: int = 200) -> str:
    """One short line: requests' messages repeat the whole URL, captions included."""
    text = re.sub(r" with url: \S+", "", " ".join(f"{type(exc).__name__}: {exc}".split()))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def provider_spec(cfg: TranslateConfig) -> ProviderSpec:
    """Check the backend settings (no network) and name the cache identity."""
    name = cfg.backend
    if name not in BACKENDS:
        raise ConfigError(
            f"translate.backend: unknown backend {name!r}", f"choose one of {', '.join(BACKENDS)}"
        )
    if name == "marian":
        model = cfg.marian_model
        check_languages(model, cfg.source_lang, cfg.to)
        local = os.path.expanduser(model)
        identity = os.path.abspath(local) if os.path.isdir(local) else model
        return ProviderSpec(name, f"marian:{identity}", cfg.max_chars_per_request)
    cache_name = name
    if name == "libre":
        endpoint = cfg.endpoint
        if not endpoint:
            raise ConfigError(
                "translate.endpoint: the libre backend needs a server URL",
                "pass --endpoint http://host:5000/ or set translate.endpoint",
            )
        if not endpoint.startswith(("http://", "https://")):
            raise ConfigError(
                f"translate.endpoint: {public_endpoint(endpoint)!r} is not an http(s) URL",
                "e.g. http://localhost:5000/",
            )
        # two servers may translate differently: each has its own cache entries (never keyed by secrets)
        cache_name = f"libre:{public_endpoint(endpoint.rstrip('/') + '/')}"
    if name in NEEDS_API_KEY and not os.environ.get(cfg.api_key_env):
        raise ConfigError(
            f"the {name} backend needs an API key in ${cfg.api_key_env}",
            f"export {cfg.api_key_env}=... (or set translate.api_key_env to the variable that holds it)",
        )
    limit = min(cfg.max_chars_per_request, PROVIDER_MAX_CHARS.get(name, cfg.max_chars_per_request))
    return ProviderSpec(name, cache_name, limit)


def _make_translator(cfg: TranslateConfig) -> Any:
    from deep_translator import (
        DeeplTranslator,
        GoogleTranslator,
        LibreTranslator,
        MicrosoftTranslator,
        MyMemoryTranslator,
    )
    from deep_translator.exceptions import InvalidSourceOrTargetLanguage, LanguageNotSupportedException

    _install_transport()
    TRANSPORT.configure(cfg.timeout)  # Microsoft asks for its language list while constructing
    key = os.environ.get(cfg.api_key_env)
    langs = {"source": cfg.source_lang, "target": cfg.to}
    try:
        if cfg.backend == "google":
            return GoogleTranslator(**langs)
        if cfg.backend == "mymemory":
            return MyMemoryTranslator(**langs)
        if cfg.backend == "deepl":
            return DeeplTranslator(api_key=key, **langs)
        if cfg.backend == "microsoft":
            return MicrosoftTranslator(api_key=key, **langs)
        endpoint = cfg.endpoint if cfg.endpoint.endswith("/") else cfg.endpoint + "/"
        # deep-translator ignores `base_url=`; `custom_url` needs the trailing slash; Libre servers
        # without keys accept any non-empty one
        return LibreTranslator(api_key=key or "clipit", custom_url=endpoint, **langs)
    except (LanguageNotSupportedException, InvalidSourceOrTargetLanguage):
        raise ConfigError(
            f"translate: the {cfg.backend} backend does not support {cfg.source_lang!r} -> {cfg.to!r}",
            "use language codes such as en and it (translate.source_lang, --to)",
        ) from None
    except (requests.exceptions.RequestException, ValueError, KeyError) as exc:
        raise NetworkError(
            f"the {cfg.backend} backend cannot be set up: {exc}", "check the network and the API key"
        ) from None
