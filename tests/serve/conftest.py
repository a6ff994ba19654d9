"""A real `clipit serve` app on a free loopback port (uvicorn in a thread), over a small embedded folder."""

from __future__ import annotations

import pytest
import requests

from clipit.embed import embed_to_folder
from clipit.search import load_index
from clipit.serve.app import Limits, create_app
from clipit.serve.batcher import Batcher
from tests.support.images import write_pictures
from tests.support.thread_server import ThreadServer


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
