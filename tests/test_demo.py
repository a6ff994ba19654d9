"""`clipit demo` end to end at a reduced size (config overrides), and its report."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from clipit.cli.main import app
from clipit.data import manifest
from clipit.demo.report import attribute_rows

REDUCED = [
    "data.synthetic.n=400",
    "data.synthetic.zeroshot_per_class=4",
    "data.synthetic.retrieval_images=16",
    "train.batch_size=32",
    "train.phases.0.steps=4",
    "train.phases.1.steps=8",
    "train.eval_every=8",
    "train.val_batches=1",
    "train.log_every=4",
    "eval.batch_size=32",
    "embed.batch_size=32",
]


def test_demo_runs_every_step_and_writes_its_report(tmp_path):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out)]
    for item in REDUCED:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output

    # the results table on stdout: every attribute beside its chance level, and retrieval
    for name in ("colour", "shape", "count", "composition", "relation", "text -> image", "image -> text"):
        assert name in result.stdout
    assert "clipit translate --input" in result.stderr  # the translate step is shown, not run
    # it ends with the command that serves the demo's index, with an absolute path (works from any folder)
    last = result.stderr.strip().splitlines()[-1]
    assert last == f"browse the demo's images: clipit serve --index {(out / 'embeddings').resolve()}", last
    assert result.stdout.count("report: ") == 1 and "report: " not in result.stderr  # said once

    report = out / "report"
    summary = json.loads((report / "metrics.json").read_text())
    zero_shot, retrieval = summary["eval"]
    assert zero_shot["task"] == "zeroshot_classification" and zero_shot["dataset"] == "synthetic"
    assert {"colour/acc1", "shape/acc1", "count/acc1", "composition/acc1"} <= set(zero_shot["metrics"])
    assert zero_shot["metrics"]["colour/chance"] == 1 / 8
    assert retrieval["task"] == "zeroshot_retrieval" and "image_retrieval_recall@1" in retrieval["metrics"]
    assert [p["name"] for p in summary["train"]["phases"]] == ["heads", "all"]  # two phases, one loop
    for name in ("index.html", "loss.png", "zeroshot.png"):
        assert (report / name).stat().st_size > 0, name
    page = (report / "index.html").read_text()
    assert "loss.png" in page and "zeroshot.png" in page and "due cerchi rossi" in page

    # every stage left its output where the other commands find it
    assert (out / "sources" / "synthetic" / "manifest.parquet").is_file()
    assert (out / "shards" / "manifest.parquet").is_file()
    # it trained on several captions per image: 400 images, 3 captions each, kept by build-shards
    assert summary["data"]["images"] == 400 and summary["data"]["captions"] == 1200
    shards = manifest.read(out / "shards").to_pylist()
    kept = [r for r in shards if r["status"] == manifest.STATUS_OK]
    assert len(kept) == 1200 and len({r["image_sha256"] for r in kept}) == 400
    assert (out / "run" / "export" / "model.safetensors").is_file()
    assert (out / "run" / "metrics.jsonl").is_file()
    assert len(summary["search"]) == 2 and all(s["hits"] for s in summary["search"])
    assert (out / "config.resolved.toml").is_file()


def test_each_attribute_is_judged_against_its_own_bar():
    metrics = {
        "colour/acc1": 0.96,
        "colour/chance": 1 / 8,
        "shape/acc1": 0.33,
        "shape/chance": 1 / 6,  # just under 2x chance
        "count/acc1": 0.50,
        "count/chance": 1 / 4,  # exactly 2x chance
        "relation/acc1": 0.30,
        "relation/chance": 1 / 4,
    }
    rows = {r["attribute"]: r for r in attribute_rows({"metrics": metrics})}
    assert [rows[a]["met"] for a in ("colour", "shape", "count", "relation")] == [True, False, True, None]
    assert rows["relation"]["target"] == "none (reported)"
