"""A real `clipit serve` app on a free loopback port (uvicorn in a thread), over a small embedded folder."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests
import uvicorn
from PIL import Image

from clipit.embed import embed_to_folder
from clipit.search import load_index
from clipit.serve.app import Limits, create_app
from clipit.serve.batcher import Batcher
from tests.eval.fixtures import write_images


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ThreadServer:
    """uvicorn serving `app` on 127.0.0.1 in a daemon thread, as `clipit serve` runs it."""

    def __init__(self, app) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def write_pictures(root):
    """A few noise images plus two plain-colour ones (something the heatmap and the page can show)."""
    write_images(root / "x", [(40, 30), (32, 32), (50, 80), (64, 64)])
    write_images(root / "y", [(33, 47), (90, 41), (48, 48)], seed=3)
    (root / "plain").mkdir()
    Image.new("RGB", (60, 40), (200, 30, 30)).save(root / "plain" / "rosso.png")
    Image.new("RGB", (60, 40), (30, 30, 200)).save(root / "plain" / "blu.jpg")


@pytest.fixture(scope="session")
def served_index(tmp_path_factory, encoder):
    root = tmp_path_factory.mktemp("serve")
    write_pictures(root / "photos")
    embed_to_folder(encoder, root / "photos", root / "index", batch_size=4, shard_size=4)
    (root / "photos" / "not-indexed.png").write_bytes((root / "photos" / "plain" / "rosso.png").read_bytes())
    return {"root": root, "photos": root / "photos", "index": root / "index"}


@pytest.fixture(scope="session")
def server(served_index, encoder):
    """The app over the tiny model, with a small byte cap so that the cap is cheap to test."""
    limits = Limits(max_upload_bytes=2_000_000, max_pixels=4_000_000)
    batcher = Batcher(encoder, max_batch=limits.max_batch, wait_s=0.05)
    app = create_app(batcher, load_index(served_index["index"]), limits)
    with ThreadServer(app) as running:
        yield running
    batcher.close()


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session
