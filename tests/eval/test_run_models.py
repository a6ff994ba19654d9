"""`--model RUN_DIR`: a clipit run folder gives the same embeddings as its HF export.

The run folder is made the way the trainer makes it (resolved config + an orbax checkpoint of the
parameters), without training: what is tested here is the loading path, not learning.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from clipit.config import load_config, save_resolved
from clipit.data.synthetic.tokenizer import write_tokenizer
from clipit.encode import open_model
from clipit.models.build import build_model
from clipit.runs.checkpoints import RunCheckpoints
from clipit.runs.export import export_run
from clipit.train.model_state import split_model
from tests.support.images import write_images
from tests.support.tiny_train import TINY_OVERRIDES


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("run_model")
    tokenizer = root / "tokenizer"
    write_tokenizer(tokenizer)
    run = root / "run"
    config = load_config(None, [*TINY_OVERRIDES, f"model.tokenizer={tokenizer}", f"train.out={run}"])
    model, _ = build_model(config.model, seed=7)
    _, params, _ = split_model(model)
    checkpoints = RunCheckpoints(run)
    checkpoints.save(3, {"params": jax.tree.map(np.asarray, params)}, {"phase": 0})
    checkpoints.close()
    save_resolved(config, run)
    return run


def test_run_folder_equals_its_export(run_dir, tmp_path):
    export = export_run(run_dir, run_dir / "export")
    from_run, from_export = open_model(str(run_dir)), open_model(str(export))
    assert from_run.image_size == from_export.image_size == 32
    assert from_run.max_text_length == 24
    paths = write_images(tmp_path, [(40, 30), (32, 32), (64, 64), (33, 47)])
    np.testing.assert_allclose(
        from_run.encode_images(paths).vectors, from_export.encode_images(paths).vectors, atol=1e-6
    )
    texts = ["un cerchio rosso", "due stelle blu su sfondo nero"]
    np.testing.assert_allclose(from_run.encode_texts(texts), from_export.encode_texts(texts), atol=1e-6)
    bf16 = open_model(str(run_dir), dtype="bfloat16")
    np.testing.assert_allclose(
        bf16.encode_images(paths).vectors, from_run.encode_images(paths).vectors, atol=3e-2
    )
