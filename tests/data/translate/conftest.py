"""The translate tests' fixture: a loopback Libre server (data and configs: tests/support/translate_data.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.libre_server import LibreServer


@pytest.fixture
def server() -> Iterator[LibreServer]:
    with LibreServer() as srv:
        yield srv
