"""Session fixtures of the eval tests: one tiny checkpoint and one opened encoder for all of them."""

from __future__ import annotations

import pytest

from tests.eval.fixtures import TorchReference, make_tiny_model


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("eval_model") / "tiny")


@pytest.fixture(scope="session")
def encoder(tiny_model):
    from clipit.encode import open_model

    return open_model(str(tiny_model))


@pytest.fixture(scope="session")
def reference(tiny_model):
    return TorchReference(tiny_model)
