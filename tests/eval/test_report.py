"""Results as clip_benchmark JSON, a side-by-side table and a bar chart."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

from clipit.eval.report import EvalResult, format_table, plot_bars, write_json
from tests.eval.clip_benchmark_code import function


def results():
    return [
        EvalResult(
            "imagenet-it",
            "runs/a",
            "zeroshot_classification",
            {"acc1": 0.2211, "acc5": 0.4},
            counts={"images": 10},
        ),
        EvalResult("imagenet-it", "runs/b", "zeroshot_classification", {"acc1": 0.5}, counts={"images": 10}),
    ]


def test_json_in_clip_benchmark_layout(tmp_path):
    one, both = tmp_path / "one.json", tmp_path / "both.json"
    assert write_json(results()[:1], one) == [one]
    written = write_json(results(), both)
    record = json.loads(one.read_text())
    assert (
        record["dataset"] == "imagenet-it"
        and record["model"] == "runs/a"
        and record["pretrained"] == "runs/a"
    )
    assert record["task"] == "zeroshot_classification" and record["language"] == "it"
    assert record["metrics"] == {"acc1": 0.2211, "acc5": 0.4}
    # several models: one object per file beside the given name, in --model order; no list file
    assert written == [tmp_path / "both-runs_a.json", tmp_path / "both-runs_b.json"]
    assert [json.loads(p.read_text())["model"] for p in written] == ["runs/a", "runs/b"]
    assert not both.exists()


def test_a_model_named_twice_gets_two_files(tmp_path):
    twice = [results()[0], results()[0]]
    assert write_json(twice, tmp_path / "r.json") == [
        tmp_path / "r-runs_a.json",
        tmp_path / "r-runs_a-2.json",
    ]


def test_a_local_model_folder_is_pretrained_by_absolute_path(tmp_path, monkeypatch):
    (tmp_path / "runs" / "a").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert results()[0].to_json()["pretrained"] == str(tmp_path / "runs" / "a")


def test_clip_benchmark_build_reads_our_files(tmp_path):
    # clip_benchmark's own `main_build` (cli.py of the installed package) over a folder and a file
    retrieval = EvalResult(
        "mscoco-it",
        "runs/a",
        "zeroshot_retrieval",
        {"image_retrieval_recall@5": 0.5, "text_retrieval_recall@5": 0.75},
        counts={"images": 4},
    )
    folder = tmp_path / "results"
    write_json(results(), folder / "zs.json")
    write_json([retrieval], tmp_path / "coco.json")
    main_build = function("cli.py", "main_build")
    table = tmp_path / "benchmark.csv"
    main_build(SimpleNamespace(files=[str(folder), str(tmp_path / "coco.json")], output=str(table)))
    rows = sorted(csv.DictReader(table.open()), key=lambda r: (r["dataset"], r["model"]))
    assert [(r["dataset"], r["model"], r["task"]) for r in rows] == [
        ("imagenet-it", "runs/a", "zeroshot_classification"),
        ("imagenet-it", "runs/b", "zeroshot_classification"),
        ("mscoco-it", "runs/a", "zeroshot_retrieval"),
    ]
    assert float(rows[0]["acc1"]) == 0.2211 and float(rows[0]["acc5"]) == 0.4 and rows[1]["acc5"] == ""
    assert (
        float(rows[2]["image_retrieval_recall@5"]) == 0.5
        and float(rows[2]["text_retrieval_recall@5"]) == 0.75
    )
    assert rows[2]["model_fullname"] == "runs/a runs/a" and rows[2]["language"] == "it"


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
