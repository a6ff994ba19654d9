"""A real HTTP image server on 127.0.0.1 for download tests (no mocks: img2dataset fetches from it).

Paths (the last segment is free, so every row of a test can have its own URL):
  /ok/<w>x<h>/<name>       200, a JPEG of that size (colour derived from the name)
  /png/<w>x<h>/<name>      200, a PNG of that size
  /missing/<name>          404
  /slow/<name>             200 after `slow_seconds` (beyond the downloader's timeout)
  /corrupt/<name>          200 with bytes that are no image
  /flaky/<w>x<h>/<name>    429 on the first request for that path, then 200 with a JPEG
Every response is delayed by `delay_seconds` (0 by default; the kill tests raise it so a download is
still running when it is killed). `required_agent`, when set, makes any request whose User-Agent lacks
it answer 403 (as Wikimedia does). Every request is recorded as (path, user agent, time).
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
from http.server import BaseHTTPRequestHandler

from PIL import Image

from tests.support.quiet_http import QuietThreadingHTTPServer


def jpeg_bytes(width: int, height: int, name: str = "", fmt: str = "JPEG") -> bytes:
    seed = hashlib.sha256(name.encode()).digest()
    image = Image.new("RGB", (width, height), tuple(seed[:3]))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


class ImageServer:
    def __init__(self) -> None:
        self.delay_seconds = 0.0
        self.slow_seconds = 4.0
        self.required_agent: str | None = None
        self.requests: list[tuple[str, str, float]] = []  # path, user agent, time.monotonic()
        self._lock = threading.Lock()
        self._seen_flaky: set[str] = set()
        self._httpd = QuietThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True  # slow handlers must not block shutdown
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def start(self) -> ImageServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def paths(self) -> list[str]:
        with self._lock:
            return [path for path, _, _ in self.requests]

    def agents(self) -> list[str]:
        with self._lock:
            return [agent for _, agent, _ in self.requests]

    def times(self, path: str) -> list[float]:
        with self._lock:
            return [when for seen, _, when in self.requests if seen == path]

    def _respond(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path
        agent = handler.headers.get("User-Agent", "")
        with self._lock:
            self.requests.append((path, agent, time.monotonic()))
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        if self.required_agent and self.required_agent not in agent:
            return self._send(handler, 403, b"generic user agents are refused", "text/plain")
        parts = path.strip("/").split("/")
        kind = parts[0]
        if kind == "missing":
            return self._send(handler, 404, b"not found", "text/plain")
        if kind == "corrupt":
            return self._send(handler, 200, b"this is not an image at all" * 10, "image/jpeg")
        if kind == "slow":
            time.sleep(self.slow_seconds)
            return self._send(handler, 200, jpeg_bytes(40, 30, path), "image/jpeg")
        if kind == "flaky":
            with self._lock:
                first = path not in self._seen_flaky
                self._seen_flaky.add(path)
            if first:
                return self._send(handler, 429, b"too many requests", "text/plain")
        if kind in ("ok", "png", "flaky") and len(parts) >= 3:
            width, height = (int(v) for v in parts[1].split("x"))
            fmt = "PNG" if kind == "png" else "JPEG"
            return self._send(handler, 200, jpeg_bytes(width, height, path, fmt), f"image/{fmt.lower()}")
        return self._send(handler, 404, b"unknown path", "text/plain")

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, code: int, body: bytes, content_type: str) -> None:
        try:
            handler.send_response(code)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout): nothing to do

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                server._respond(self)

            def log_message(self, format: str, *args) -> None:  # noqa: A002
                pass  # keep test output clean

        return Handler


def fast_download_args(
    samples_per_shard: int = 4,
    retries: int = 0,
    threads: int = 4,
    rate_limit_rounds: int = 0,
    rate_limit_wait: float = 0.0,
) -> list[str]:
    """`--set` options for tests: one worker process, 1 s timeout, tiny shards (img2dataset spawns processes)."""
    values = {
        "processes": 1,
        "threads": threads,
        "timeout": 1.0,
        "retries": retries,
        "samples_per_shard": samples_per_shard,
        "rate_limit_rounds": rate_limit_rounds,
        "rate_limit_wait": rate_limit_wait,
    }
    return [arg for key, value in values.items() for arg in ("--set", f"data.download.{key}={value}")]
