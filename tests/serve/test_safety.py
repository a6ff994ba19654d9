"""`clipit serve` safety: only index files are served, uploads are capped, slow work times out, the CLI
binds loopback and fails early on bad input."""

from __future__ import annotations

import http.client
import os
import socket
import struct
import time
import zlib

import pytest
import requests
from typer.testing import CliRunner

from clipit.cli.main import app as cli
from clipit.search import load_index
from clipit.serve.app import Limits, create_app
from clipit.serve.batcher import Batcher
from tests.support import clipit_cli
from tests.support.thread_server import ThreadServer, free_port


def raw_get(server, path: str) -> int:
    """GET with the path sent byte for byte (clients such as requests normalise `..` away)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.endheaders()
        return connection.getresponse().status
    finally:
        connection.close()


def png_bomb(width: int, height: int) -> bytes:
    """A genuine 1-bit PNG of width x height black pixels: a few kB that decode to width*height*3 bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes((width + 7) // 8)
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height, 9))
        + chunk(b"IEND", b"")
    )


def test_only_index_files_are_served(server, served_index):
    photos = served_index["photos"]
    assert raw_get(server, "/images/x/img00.png") == 200
    secret = served_index["root"] / "secret.txt"
    secret.write_text("do not serve")
    for path in [
        "/images/not-indexed.png",  # in the images' folder, but not in the index
        "/images/../secret.txt",
        "/images/x/../../secret.txt",
        "/images/%2e%2e/secret.txt",
        "/images/%2E%2E%2Fsecret.txt",
        "/images/..%2fsecret.txt",
        "/images/x%2f..%2f..%2fsecret.txt",
        "/images/%252e%252e/secret.txt",
        "/images/" + str(photos / "x" / "img00.png"),  # an absolute path, even of an indexed file
        "/images//etc/passwd",
        "/images/../../../../etc/passwd",
        "/images/x/img00.png%00.txt",
        "/static/../../search.py",
        "/static/%2e%2e/app.py",
    ]:
        assert raw_get(server, path) in (404, 400), path
    assert raw_get(server, "/api/health") == 200


def test_uploads_over_the_byte_cap_are_refused_unread(server):
    big = os.urandom(2_500_000)  # over the test server's 2,000,000-byte cap
    answer = requests.post(server.url + "/api/search", files={"image": ("big.jpg", big)}, timeout=30)
    assert answer.status_code == 413 and "limit" in answer.json()["detail"]

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(30):
            yield b"x" * 100_000

    answer = requests.post(
        server.url + "/api/classify",
        data=chunks(),
        timeout=30,
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert answer.status_code == 413
    assert requests.get(server.url + "/api/health", timeout=10).status_code == 200


@pytest.mark.parametrize("side", [8_000, 20_000])  # over our cap; over Pillow's own limit too
def test_a_decompression_bomb_gets_413_and_the_server_lives(server, side):
    bomb = png_bomb(side, side)  # side*side*3 bytes decoded (up to 1.2 GB) from a few kB
    assert len(bomb) < 200_000
    for route, data in [("/api/search", {}), ("/api/classify", {"labels": "a\nb"})]:
        answer = requests.post(server.url + route, files={"image": ("bomb.png", bomb)}, data=data, timeout=30)
        assert answer.status_code == 413 and "pixel limit" in answer.json()["detail"], answer.text
    assert requests.get(server.url + "/api/search", params={"q": "gatto"}, timeout=30).status_code == 200


def test_a_request_that_waits_too_long_for_the_model_times_out(served_index, encoder):
    # The batcher waits 3 s to gather a batch; the request may wait 0.5 s: a 504, and the server lives.
    limits = Limits(request_timeout_s=0.5)
    batcher = Batcher(encoder, wait_s=3.0)
    try:
        with ThreadServer(create_app(batcher, load_index(served_index["index"]), limits)) as slow:
            started = time.monotonic()
            answer = requests.get(slow.url + "/api/search", params={"q": "gatto"}, timeout=30)
            assert answer.status_code == 504 and time.monotonic() - started < 3
            assert requests.get(slow.url + "/api/health", timeout=10).status_code == 200
    finally:
        batcher.close()


def test_cli_serves_on_loopback_from_another_folder(served_index, tmp_path):
    port = free_port()
    process = clipit_cli.start(
        "serve", "--index", str(served_index["index"]), "--port", str(port), cwd=tmp_path
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/api/health", timeout=5)
                break
            except requests.ConnectionError:
                assert process.poll() is None, "clipit serve exited"
                assert time.monotonic() < deadline, "clipit serve did not start"
                time.sleep(0.5)
        assert answer.status_code == 200 and answer.json()["images"] == 9
        hits = requests.get(f"http://127.0.0.1:{port}/api/search", params={"q": "gatto", "k": 3}, timeout=30)
        assert len(hits.json()["results"]) == 3
        page = requests.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert page.status_code == 200 and "/static/app.js" in page.text
        assert "://" not in page.text  # nothing fetched from elsewhere: works offline
        assert _listeners(port) == ["127.0.0.1"]
    finally:
        process.terminate()
        process.wait(timeout=30)


def _listeners(port: int) -> list[str]:
    """Local IPv4 addresses listening on `port` (from /proc/net/tcp: state 0A is LISTEN)."""
    found = []
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:
                found.append(socket.inet_ntoa(struct.pack("<I", int(address, 16))))
    return found


def test_cli_missing_index_is_one_line_and_exit_2(tmp_path):
    result = CliRunner().invoke(cli, ["serve", "--index", str(tmp_path / "nope"), "--port", str(free_port())])
    assert result.exit_code == 2 and "nope" in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error:")


def test_cli_taken_port_is_one_line_and_exit_2(served_index):
    with socket.socket() as taken:  # checked before the model is loaded
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = CliRunner().invoke(cli, ["serve", "--index", str(served_index["index"]), "--port", port])
    assert result.exit_code == 2 and "--port" in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1
