"""Fixtures for the download tests: a real loopback image server and small, fast img2dataset settings."""

from __future__ import annotations

import os

import pytest

from tests.support.image_server import ImageServer

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


@pytest.fixture
def image_server():
    server = ImageServer().start()
    yield server
    server.stop()
