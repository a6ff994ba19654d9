"""Starting fast: each tower read on first use, no tokenizer for images, the persistent compilation
cache, and one compiled shape per batch size whatever the last batch holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clipit import compile_cache, encode
from tests.support.images import write_images

ENV = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}

# Encodes images or texts in a fresh process and says what it imported and which parameters were
# never read (still shapes only), by their top-level module.
PROBE = """
import json, sys
import jax
from flax import nnx
from clipit.encode import open_model

model_dir, kind, *paths = sys.argv[1:]
encoder = open_model(model_dir, compilation_cache=False)
vectors = encoder.encode_images(paths).vectors if kind == "image" else encoder.encode_texts(["una casa rossa"])
unread = sorted({
    str(path[0]) for path, variable in nnx.to_flat_state(nnx.state(encoder.model, nnx.Param))
    if isinstance(variable.get_value(), jax.ShapeDtypeStruct)
})
print(json.dumps({"transformers": "transformers" in sys.modules, "unread": unread, "vectors": vectors.tolist()}))
"""


def _probe(model_dir, kind: str, paths=()) -> dict:
    process = subprocess.run(
        [sys.executable, "-c", PROBE, str(model_dir), kind, *map(str, paths)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    assert process.returncode == 0, process.stderr[-2000:]
    return json.loads(process.stdout.strip().splitlines()[-1])


def test_images_alone_never_load_the_tokenizer_or_the_text_tower(tiny_model, encoder, tmp_path):
    paths = write_images(tmp_path)
    result = _probe(tiny_model, "image", paths)
    assert result["transformers"] is False  # the tokenizer (and transformers) never loaded
    assert result["unread"] == ["text_model", "text_projection"]
    # The same vectors as an encoder that has read both towers.
    np.testing.assert_allclose(result["vectors"], encoder.encode_images(paths).vectors, atol=1e-6)


def test_texts_alone_never_read_the_vision_tower(tiny_model, encoder):
    result = _probe(tiny_model, "text")
    assert result["unread"] == ["vision_model", "visual_projection"]
    np.testing.assert_allclose(result["vectors"], encoder.encode_texts(["una casa rossa"]), atol=1e-6)


def _embed(model_dir, images, tmp_path, name: str, *flags: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in ENV.items() if not k.startswith("JAX_")}
    env |= {"XDG_CACHE_HOME": str(tmp_path / name), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    process = subprocess.run(
        [sys.executable, "-m", "clipit.cli.main", "embed", str(images), "--model", str(model_dir), *flags],
        capture_output=True,
        env=env,
        timeout=300,
    )
    assert process.returncode == 0, process.stderr.decode()[-2000:]
    return process


def test_compiled_code_is_cached_under_the_user_cache_folder_unless_turned_off(tiny_model, tmp_path):
    images = tmp_path / "images"
    write_images(images)
    first = _embed(tiny_model, images, tmp_path, "on")
    cached = sorted(p.name for p in (tmp_path / "on" / "clipit" / "jax").iterdir())
    assert cached, "nothing was written to the compilation cache"
    second = _embed(tiny_model, images, tmp_path, "on")  # reads the cache: same vectors, no new entries
    assert sorted(p.name for p in (tmp_path / "on" / "clipit" / "jax").iterdir()) == cached
    assert second.stdout == first.stdout
    _embed(tiny_model, images, tmp_path, "off", "--set", "embed.compilation_cache=false")
    assert not (tmp_path / "off").exists()


def test_compilation_cache_folder_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compile_cache.compilation_cache_dir() == tmp_path / "clipit" / "jax"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # not absolute: ignored, as XDG says
    assert compile_cache.compilation_cache_dir() == Path.home() / ".cache" / "clipit" / "jax"


@pytest.mark.parametrize("kind", ["image", "text"])
def test_partial_last_batch_is_not_compiled_again(encoder, tmp_path, kind):
    function = encode._encode_image if kind == "image" else encode._encode_text
    if kind == "image":
        paths = write_images(tmp_path)  # 6 images
        run = lambda count: encoder.encode_images(paths[:count], batch_size=5)  # noqa: E731
    else:
        texts = ["cane", "gatto", "casa", "sole", "mare", "lago"]  # one length bucket
        run = lambda count: encoder.encode_texts(texts[:count], batch_size=5)  # noqa: E731
    before = function._cache_size()  # no other test encodes batches of 5
    run(6)  # a full batch of 5, then a last batch of 1: padded to 5
    assert function._cache_size() - before <= 1  # one compiled shape for both batches
    compiled = function._cache_size()
    run(6)
    run(5)
    assert function._cache_size() == compiled
