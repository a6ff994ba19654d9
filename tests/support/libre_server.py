"""A real LibreTranslate-compatible HTTP server on 127.0.0.1 for translation tests and benchmarks.

`POST /translate` with `q`, `source`, `target` (query string, form body or JSON, as LibreTranslate
accepts) answers `{"translatedText": ...}`, translating each line of `q` with `fake_translate`, so a
newline-packed request comes back line for line. Knobs (set them on the object, any time):
  delay           seconds to wait before answering each request (a slow provider)
  throttle_every  every n-th request answers 429 with Retry-After: 0
  unavailable_every  every n-th request answers 503
  drop_every      every n-th request closes the connection without an answer
  mangle          multi-line requests come back with the lines joined by spaces (a provider that
                  does not keep the separator)
  reject          texts (lines) that make the whole request answer 400
Counters: `requests` (every request, failures included), `served` (successful requests),
`lines_per_request` (of each successful request), `translated` (how often each line was successfully
answered: the test of "translated exactly once"), `arrivals` (monotonic time of each request) and
`max_in_flight` (most requests being handled at once).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from tests.support.quiet_http import QuietThreadingHTTPServer

DICTIONARY = {
    "a": "un",
    "the": "il",
    "dog": "cane",
    "cat": "gatto",
    "red": "rosso",
    "blue": "blu",
    "green": "verde",
    "small": "piccolo",
    "big": "grande",
    "house": "casa",
    "car": "auto",
    "on": "su",
    "in": "in",
    "park": "parco",
    "with": "con",
    "and": "e",
    "man": "uomo",
    "woman": "donna",
    "tree": "albero",
    "street": "strada",
}


def fake_translate(line: str) -> str:
    """Deterministic 'Italian': dictionary words replaced, others kept, with a marker in front."""
    return "[it] " + " ".join(DICTIONARY.get(word, word) for word in line.split())


class LibreServer:
    def __init__(self) -> None:
        self.delay = 0.0
        self.throttle_every = 0
        self.drop_every = 0
        self.unavailable_every = 0
        self.mangle = False
        self.reject: set[str] = set()
        self.requests = 0
        self.served = 0
        self.lines_per_request: list[int] = []
        self.translated: Counter[str] = Counter()
        self.arrivals: list[float] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._httpd = QuietThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def in_flight(self) -> int:
        """Requests being answered now (a test waits for 0 before it counts what was served)."""
        with self._lock:
            return self._in_flight

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> LibreServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> LibreServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _handle(self, params: dict[str, str]) -> tuple[int, dict[str, str] | None]:
        """(status, JSON body); a None body means: drop the connection."""
        with self._lock:
            self.requests += 1
            number = self.requests
            self.arrivals.append(time.monotonic())
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            if self.delay:
                time.sleep(self.delay)
            return self._answer(number, params)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _answer(self, number: int, params: dict[str, str]) -> tuple[int, dict[str, str] | None]:
        if self.drop_every and number % self.drop_every == 0:
            return 0, None
        if self.unavailable_every and number % self.unavailable_every == 0:
            return 503, {"error": "Service unavailable"}
        if self.throttle_every and number % self.throttle_every == 0:
            return 429, {"error": "Slowdown: too many requests"}
        text = params.get("q")
        if text is None or not params.get("source") or not params.get("target"):
            return 400, {"error": "Invalid request: missing q, source or target"}
        lines = text.split("\n")
        if any(line in self.reject for line in lines):
            return 400, {"error": "rejected text"}
        translated = [fake_translate(line) for line in lines]
        joiner = " " if self.mangle and len(lines) > 1 else "\n"
        with self._lock:
            self.served += 1
            self.lines_per_request.append(len(lines))
            if joiner == "\n":
                self.translated.update(lines)
        return 200, {"translatedText": joiner.join(translated)}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers do

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if parts.path != "/translate":
                    self._answer(404, {"error": "not found"})
                    return
                params = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if body and self.headers.get("Content-Type", "").startswith("application/json"):
                    params.update(json.loads(body))
                elif body:
                    params.update({k: v[0] for k, v in parse_qs(body.decode()).items()})
                status, payload = server._handle(params)
                if payload is None:
                    self.close_connection = True  # no answer at all: the client sees a dropped connection
                    return
                self._answer(status, payload)

            def _answer(self, status: int, payload: dict[str, str]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:  # quiet test output
                pass

        return Handler
