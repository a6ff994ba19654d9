"""Session fixtures shared across test folders: one tiny HF checkpoint (made by transformers), its
opened encoder and PyTorch reference, and tiny training shards, each built once per test session."""

from __future__ import annotations

import os

import pytest

from tests.support import tiny_hf
from tests.support.torch_reference import TorchReference


@pytest.fixture(scope="session", autouse=True)
def _compilation_cache_in_tmp(tmp_path_factory):
    """Compiled code of the tests (and the CLIs they start) goes to a temporary folder, never to the
    user's cache."""
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path_factory.mktemp("jax_cache"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    return tiny_hf.save_tiny_dual_encoder(tmp_path_factory.mktemp("eval_model") / "tiny", seed=4)


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory):
    """Tiny synthetic training shards (train and runs tests)."""
    from tests.support.tiny_train import write_synthetic_shards  # jax: only where a test needs shards

    return write_synthetic_shards(tmp_path_factory.mktemp("shards"), train=256, val=64)


@pytest.fixture(scope="session")
def encoder(tiny_model):
    from clipit.encode import open_model

    return open_model(str(tiny_model))


@pytest.fixture(scope="session")
def reference(tiny_model):
    return TorchReference(tiny_model)


# Tests that build, train, evaluate or serve a model: by folder, or by the model fixtures they use.
_MODEL_FOLDERS = ("train", "serve", "models", "eval")
_MODEL_FIXTURES = {"tiny_model", "encoder", "reference", "tiny_run", "tiny_shards"}


def pytest_collection_modifyitems(config, items):
    tests_root = os.path.dirname(__file__)
    for item in items:
        relative = os.path.relpath(str(item.path), tests_root).split(os.sep)
        if (
            relative[0] in _MODEL_FOLDERS
            or relative[0] == "test_demo.py"
            or _MODEL_FIXTURES & set(item.fixturenames)
        ):
            item.add_marker(pytest.mark.model)
