"""Results as clip_benchmark JSON, a side-by-side table and a bar chart."""

from __future__ import annotations

import json

from clipit.eval.report import EvalResult, format_table, plot_bars, write_json


def results():
    return [
        EvalResult("imagenet-it", "runs/a", "zeroshot_classification", {"acc1": 0.2211, "acc5": 0.4}, counts={"images": 10}),
        EvalResult("imagenet-it", "runs/b", "zeroshot_classification", {"acc1": 0.5}, counts={"images": 10}),
    ]


def test_json_in_clip_benchmark_layout(tmp_path):
    one, both = tmp_path / "one.json", tmp_path / "both.json"
    write_json(results()[:1], one)
    write_json(results(), both)
    record = json.loads(one.read_text())
    assert record["dataset"] == "imagenet-it" and record["model"] == "runs/a"
    assert record["task"] == "zeroshot_classification" and record["language"] == "it"
    assert record["metrics"] == {"acc1": 0.2211, "acc5": 0.4}
    assert [r["model"] for r in json.loads(both.read_text())] == ["runs/a", "runs/b"]


def test_table_puts_models_side_by_side():
    lines = format_table(results()).splitlines()
    assert lines[0] == "zeroshot_classification on imagenet-it (metrics in %)"
    assert lines[1].split() == ["metric", "runs/a", "runs/b"]
    assert lines[3].split() == ["acc1", "22.11", "50.00"]
    assert lines[4].split() == ["acc5", "40.00", "-"]  # a metric one model lacks
    assert lines[6].split() == ["images", "10", "10"]


def test_plot_is_a_png(tmp_path):
    target = tmp_path / "plots" / "bars.png"
    plot_bars(results(), target)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in target.parent.iterdir()] == ["bars.png"]  # no temporary left behind
