"""Sharded checkpoints (`train.mesh` fsdp) resumed on other mesh shapes continue the uninterrupted run."""

from __future__ import annotations

import json
import shutil

import jax
import numpy as np
import pytest
from typer.testing import CliRunner

from clipit.cli.main import app
from clipit.config import load_config
from clipit.config.data import SyntheticSource
from clipit.config.eval import EvalConfig
from clipit.data.synthetic import generate
from clipit.eval import zeroshot
from clipit.runs.checkpoints import RunCheckpoints
from clipit.runs.metrics import read_metrics
from clipit.train.loop import train_and_evaluate
from tests.support.tiny_train import SIDE, params_at, tiny_overrides, tiny_phases

HEADS, FULL = 2, 6
CUT = 4  # resume from here: phase 'all' half done, its Adam state split over fsdp
RUN = [
    tiny_phases(heads=HEADS, full=FULL),
    "train.checkpoint_every=2",
    "train.keep_checkpoints=10",
    "train.log_every=1",
    "train.eval_every=100",
    "train.export=false",
    "model.text.dropout=0.0",
]


def _train_losses(run_dir) -> dict[int, float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if r.get("split") == "train"}


def _cut_after(source, target, step: int):
    """A copy of a finished run as if it had been killed right after checkpoint `step`."""
    shutil.copytree(source, target)
    for folder in (target / "checkpoints").iterdir():
        if folder.name.isdigit() and int(folder.name) > step:
            shutil.rmtree(folder)
    return target


@pytest.fixture(scope="module")
def uninterrupted(tiny_shards, tmp_path_factory):
    """The whole run on data=2 x fsdp=4."""
    assert jax.device_count() == 8, "run with XLA_FLAGS=--xla_force_host_platform_device_count=8"
    out = tmp_path_factory.mktemp("fsdp") / "run"
    config = load_config(
        None, tiny_overrides(tiny_shards, out, *RUN, "train.mesh.data=2", "train.mesh.fsdp=4")
    )
    train_and_evaluate(config)
    return out


@pytest.mark.parametrize("mesh", [("8", "1"), ("4", "2")], ids=["data8", "data4-fsdp2"])
def test_sharded_checkpoint_resumes_on_another_mesh(uninterrupted, tiny_shards, tmp_path, mesh):
    run = _cut_after(uninterrupted, tmp_path / "run", CUT)
    data, fsdp = mesh
    config = load_config(
        None,
        tiny_overrides(tiny_shards, run, *RUN, f"train.mesh.data={data}", f"train.mesh.fsdp={fsdp}"),
    )
    summary = train_and_evaluate(config, resume=True)
    assert summary["steps"] == HEADS + FULL
    expected, resumed = _train_losses(uninterrupted), _train_losses(run)
    assert sorted(resumed) == list(range(1, HEADS + FULL + 1))
    for step in range(CUT + 1, HEADS + FULL + 1):
        assert resumed[step] == pytest.approx(expected[step], rel=1e-4), step
    final, reference = params_at(run, HEADS + FULL), params_at(uninterrupted, HEADS + FULL)
    for key in reference:
        if key.endswith("key/bias"):  # softmax ignores it: its gradient is rounding noise
            continue
        np.testing.assert_allclose(final[key], reference[key], rtol=1e-4, atol=1e-5, err_msg=key)


def test_checkpoint_of_an_fsdp_run_reads_as_whole_arrays(uninterrupted):
    """eval, embed and export read a sharded checkpoint's parameters whole, with no mesh."""
    params = params_at(uninterrupted, HEADS + FULL)
    assert params["text_model/embeddings/word_embeddings/embedding"].shape == (256, 32)
    checkpoints = RunCheckpoints(uninterrupted, read_only=True)
    try:
        assert checkpoints.steps() == [2, 4, 6, 8]
    finally:
        checkpoints.close()


def test_cli_trains_with_fsdp_and_resumes_on_another_mesh(tiny_shards, tmp_path):
    """...with remat turned on at the resume: neither changes the run's maths. A zero-shot evaluator
    encodes with the fsdp-sharded parameters and logs `clipit eval`'s numbers of the checkpoint."""
    out, sets = tmp_path / "run", tmp_path / "sets"
    generate(SyntheticSource(out=sets, n=8, image_size=SIDE, zeroshot_per_class=2, retrieval_images=4))
    evaluator = (
        f'train.evaluators=[{{kind="zero-shot", dataset="synthetic", data="{sets}", name="synthetic"}}]'
    )
    args = ["--config", "tiny", "train"]
    for item in tiny_overrides(tiny_shards, out, *RUN, tiny_phases(heads=1, full=3), evaluator):
        args += ["--set", item]
    first = CliRunner().invoke(app, [*args, "--set", "train.mesh.fsdp=2"])
    assert first.exit_code == 0, first.output
    assert (out / "config.resolved.toml").read_text().count("fsdp = 2") == 1
    shutil.rmtree(out / "checkpoints" / "4")  # as if killed after checkpoint 2
    second = CliRunner().invoke(
        app,
        ["train", "--out", str(out), "--resume", "--set", "train.mesh.fsdp=4", "--set", "model.remat=true"],
    )
    assert second.exit_code == 0, second.output
    assert "resuming" in second.output
    losses = _train_losses(out)
    assert sorted(losses) == [1, 2, 3, 4] and all(np.isfinite(v) for v in losses.values())
    assert (out / "checkpoints" / "4").is_dir()
    cfg = EvalConfig(model=[str(out)], batch_size=32)
    cfg = cfg.model_copy(
        update={"zero_shot": cfg.zero_shot.model_copy(update={"dataset": "synthetic", "data": sets})}
    )
    [expected] = zeroshot.run(cfg)
    logged = next(r for r in read_metrics(out) if r["split"] == "synthetic" and r["step"] == 4)
    assert {k: logged[k] for k in expected.metrics} == expected.metrics
