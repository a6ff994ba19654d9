"""`[[train.evaluators]]` and `train.best_by`: a tiny run measures the synthetic zero-shot and retrieval
sets at its eval cadence with `clipit eval`'s numbers, keeps the best checkpoint by an evaluator metric,
and refuses bad evaluator configs in one line before any work."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from clipit.cli.main import app
from clipit.config import load_config
from clipit.config.data import SyntheticSource
from clipit.config.eval import EvalConfig
from clipit.data.synthetic import generate
from clipit.eval import retrieval, zeroshot
from clipit.eval.shard_captions import write_eval_folder
from clipit.runs.checkpoints import RunCheckpoints, metric_of
from clipit.runs.metrics import read_metrics
from clipit.runs.model import best_step
from tests.support.tiny_train import SIDE, tiny_overrides

BEST_BY = "synthetic/colour/acc1"
EVALUATORS = (
    'train.evaluators=[{kind="zero-shot", dataset="synthetic", data="sets", name="synthetic", batch_size=32},'
    ' {kind="retrieval", data="sets/retrieval", name="captions", every=3}]'
)


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evalsets")
    generate(
        SyntheticSource(out=folder / "sets", n=8, image_size=SIDE, zeroshot_per_class=2, retrieval_images=12)
    )
    return folder


@pytest.fixture(scope="module")
def evaluated_run(tiny_shards, sets):
    from clipit.train.loop import train_and_evaluate

    out = sets / "run"
    heldout = f'{{kind="retrieval", data="{tiny_shards}", name="heldout", max_images=20, every=4}}'
    overrides = tiny_overrides(
        tiny_shards,
        out,
        EVALUATORS.replace("every=3}]", f"every=3}}, {heldout}]"),
        f"train.best_by={BEST_BY}",
        "train.eval_every=2",
        "train.checkpoint_every=2",
        "train.keep_checkpoints=1",
        'train.phases=[{name="heads", steps=2, trainable=["projection", "logit_scale"], lr=3e-2},'
        ' {name="all", steps=6, lr=3e-3}]',
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(sets)  # the evaluators' relative paths are resolved here, once
        summary = train_and_evaluate(load_config(None, overrides))  # every device: a replicated state
    return out, summary


def test_evaluators_log_at_their_cadence_with_phase_and_step(evaluated_run, sets):
    run_dir, _ = evaluated_run
    rows = read_metrics(run_dir)
    zero_shot = [r for r in rows if r["split"] == "synthetic"]
    assert [(r["phase"], r["step"]) for r in zero_shot] == [
        ("heads", 2),
        ("all", 4),
        ("all", 6),
        ("all", 8),
    ]
    # every=3, plus the end of each phase
    assert [r["step"] for r in rows if r["split"] == "captions"] == [2, 3, 6, 8]
    assert {"colour/acc1", "shape/acc1", "colour/chance"} <= set(zero_shot[0])
    saved = load_config(run_dir / "config.resolved.toml").train.evaluators
    assert [e.data for e in saved][:2] == [sets / "sets", sets / "sets" / "retrieval"]  # absolute


def test_logged_values_equal_clipit_eval_on_the_checkpoint(evaluated_run, sets, tiny_shards):
    run_dir, summary = evaluated_run
    rows = read_metrics(run_dir)
    final = summary["steps"]
    assert RunCheckpoints(run_dir, read_only=True).latest_step() == final
    cfg = EvalConfig(model=[str(run_dir)], batch_size=32)
    zero_shot_cfg = cfg.model_copy(
        update={"zero_shot": cfg.zero_shot.model_copy(update={"dataset": "synthetic", "data": sets / "sets"})}
    )
    [expected] = zeroshot.run(zero_shot_cfg)
    logged = next(r for r in rows if r["split"] == "synthetic" and r["step"] == final)
    assert {k: logged[k] for k in expected.metrics} == expected.metrics

    retrieval_cfg = cfg.model_copy(
        update={
            "batch_size": 64,
            "retrieval": cfg.retrieval.model_copy(
                update={
                    "images": sets / "sets" / "retrieval" / "images",
                    "annotations": sets / "sets" / "retrieval" / "captions.json",
                }
            ),
        }
    )
    [expected] = retrieval.run(retrieval_cfg)
    logged = next(r for r in rows if r["split"] == "captions" and r["step"] == final)
    assert {k: logged[k] for k in expected.metrics} == expected.metrics

    # the shards folder's val split, as the eval folder `clipit eval retrieval` reads
    heldout = write_eval_folder(tiny_shards, "val", sets / "heldout", max_images=20)
    assert len(json.loads((heldout / "captions.json").read_text())["annotations"]) == 40  # 2 per image
    heldout_cfg = retrieval_cfg.model_copy(
        update={
            "retrieval": cfg.retrieval.model_copy(
                update={"images": heldout / "images", "annotations": heldout / "captions.json"}
            )
        }
    )
    [expected] = retrieval.run(heldout_cfg)
    assert expected.counts["images"] == 20
    logged = next(r for r in rows if r["split"] == "heldout" and r["step"] == final)
    assert {k: logged[k] for k in expected.metrics} == expected.metrics
    assert [r["step"] for r in rows if r["split"] == "heldout"] == [2, 4, 8]


def test_best_by_keeps_and_exports_the_step_with_the_best_evaluator_metric(evaluated_run):
    run_dir, summary = evaluated_run
    logged = {r["step"]: r["colour/acc1"] for r in read_metrics(run_dir) if r["split"] == "synthetic"}
    # the earliest step with the highest value; retention never drops the best so far
    expected = min(logged, key=lambda s: (-logged[s], s))
    val_loss = {r["step"]: r["loss"] for r in read_metrics(run_dir) if r["split"] == "val"}
    # The case where they disagree: colour stays at chance in 8 steps while the val loss falls.
    assert expected != min(val_loss, key=val_loss.get), (logged, val_loss)
    checkpoints = RunCheckpoints(run_dir, read_only=True)
    try:
        kept = checkpoints.steps()
        assert kept == sorted({expected, summary["steps"]})  # keep_checkpoints=1: the last and the best
        assert metric_of(checkpoints.read_meta(expected), BEST_BY) == logged[expected]
    finally:
        checkpoints.close()
    assert summary["best_checkpoint"] == expected == best_step(run_dir)
    by_loss = RunCheckpoints(run_dir, read_only=True, best_by="val/loss")
    try:  # the default ranks the same kept checkpoints by val loss, lowest first
        assert by_loss.best_step() == min(kept, key=val_loss.get)
    finally:
        by_loss.close()


def test_curves_and_model_card_show_the_evaluators(evaluated_run, tmp_path):
    from PIL import Image

    from clipit.runs.export import export_run

    run_dir, _ = evaluated_run
    assert Image.open(run_dir / "curves.png").size == (1600, 320)  # a fourth panel: 20 x 4 inches at 80 dpi
    best = best_step(run_dir)
    card = (export_run(run_dir, tmp_path / "best", best=True) / "README.md").read_text()
    assert f"checkpoint of step {best}." in card and f"`{BEST_BY}`" in card
    colour = next(
        r["colour/acc1"] for r in read_metrics(run_dir) if r["split"] == "synthetic" and r["step"] == best
    )
    assert f"| {BEST_BY} | {colour:.4f} |" in card


def test_checkpoints_without_recorded_metrics_are_ranked_by_val_loss():
    assert metric_of({"val_loss": 0.5}, "val/loss") == 0.5
    assert metric_of({"val_loss": 0.5}, BEST_BY) is None
    assert metric_of({"val_loss": 0.5, "metrics": {"val/loss": 0.25}}, "val/loss") == 0.25


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            'train.evaluators=[{kind="zero-shot", dataset="synthetic", data="/nonexistent/sets"}]',
            "train.evaluators[0].data: /nonexistent/sets does not exist",
        ),
        ('train.evaluators=[{kind="retrieval", data="/nonexistent/c.json"}]', "train.evaluators[0].data"),
        ('train.evaluators=[{kind="zero-shot", data="/tmp", colour=1}]', "train.evaluators.0.colour"),
        ("train.best_by=imagenet/acc1", "train.best_by 'imagenet/acc1'"),
    ],
)
def test_bad_evaluator_config_fails_before_training_in_one_line(tiny_shards, tmp_path, extra, message):
    out = tmp_path / "run"
    args = [arg for item in tiny_overrides(tiny_shards, out, extra) for arg in ("--set", item)]
    result = CliRunner().invoke(app, ["train", *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not out.exists()


def test_a_caption_file_needs_its_images_folder(tiny_shards, tmp_path):
    captions = tmp_path / "c.json"
    captions.write_text(json.dumps({"images": [], "annotations": []}))
    extra = f'train.evaluators=[{{kind="retrieval", data="{captions}"}}]'
    args = [arg for item in tiny_overrides(tiny_shards, tmp_path / "run", extra) for arg in ("--set", item)]
    result = CliRunner().invoke(app, ["train", *args])
    assert result.exit_code == 2 and "train.evaluators[0].images is missing" in result.stderr, result.output


def test_a_best_by_name_the_evaluator_does_not_log_is_warned_about_once(capsys):
    from clipit.config.model import ModelConfig
    from clipit.train.evaluators import RunEvaluators

    evaluators = RunEvaluators([], ModelConfig(), None)
    evaluators.check_best_by("synthetic/colour/top1", {"val/loss": 1.0})  # its split not measured yet
    evaluators.check_best_by("synthetic/colour/top1", {"synthetic/colour/acc1": 0.5, "val/loss": 1.0})
    evaluators.check_best_by("synthetic/colour/top1", {"synthetic/colour/acc1": 0.5})
    err = capsys.readouterr().err
    assert err.count("train.best_by 'synthetic/colour/top1' is not a logged metric") == 1, err
    assert "synthetic/colour/acc1" in err


@pytest.mark.parametrize(
    "override",
    [
        'train.evaluators=[{kind="zero-shot", dataset="synthetic", data="sets", every=7}]',
        "train.best_by=val/t2i_r@5",
        'train.best_mode="min"',
    ],
)
def test_a_resume_may_change_evaluators_and_best_by(tmp_path, override):
    from clipit.config import save_resolved
    from clipit.train.run_config import check_resume, run_config

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    save_resolved(run_config(load_config("tiny"), data=tmp_path / "shards", out=run_dir), run_dir)
    check_resume(run_config(load_config(run_dir / "config.resolved.toml", [override])), run_dir)


def test_a_manifest_of_a_shards_folder_is_its_val_split_as_a_retrieval_set(tiny_shards, tmp_path):
    import shutil

    from clipit.train.evaluators import build_evaluators

    shards = shutil.copytree(tiny_shards, tmp_path / "shards")
    (shards / "manifest.parquet").write_bytes(b"")  # build-shards writes one; only its folder is read
    extra = f'train.evaluators=[{{kind="retrieval", data="{shards / "manifest.parquet"}", max_images=5}}]'
    [evaluator] = build_evaluators(load_config(None, tiny_overrides(shards, tmp_path / "run", extra)))
    assert evaluator.name == "mscoco-it" and len(evaluator.captions.image_paths) == 5
    assert len(evaluator.captions.captions) == 10 and all(p.is_file() for p in evaluator.captions.image_paths)
