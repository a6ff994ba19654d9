"""Evaluation results: one record per (model, dataset, task), a side-by-side table, JSON and a bar chart.

The JSON record is the one `clip_benchmark eval` writes and `clip_benchmark build` reads (`dataset`,
`model`, `pretrained`, `task`, `metrics`, `language`) with its metric names (`acc1`, `acc5`,
`mean_per_class_recall`, `image_retrieval_recall@5`, ...) and values as fractions in [0, 1], so clipit's
numbers can sit beside clip_benchmark's. `counts` (images used, images unreadable, classes, ...) is an
extra key; `build` copies it into its CSV as one more column. `build` reads one object per file, so
several models are written as one file each.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from clipit import atomic

ZERO_SHOT_TASK = "zeroshot_classification"
RETRIEVAL_TASK = "zeroshot_retrieval"


@dataclass(frozen=True)
class EvalResult:
    dataset: str
    model: str
    task: str
    metrics: dict[str, float]
    language: str = "it"
    counts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "dataset": self.dataset,
            "model": self.model,
            "pretrained": weights_location(self.model),
            "task": self.task,
            "metrics": self.metrics,
            "language": self.language,
            "counts": self.counts,
        }


def weights_location(model: str) -> str:
    """clip_benchmark's `pretrained` (which weights): a local folder's absolute path, else the hub id."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model


def json_paths(results: list[EvalResult], path: Path) -> list[Path]:
    """One model: `path`. Several: `<stem>-<model>.json` beside it, one per model in --model order
    (a model named twice gets `-2`, `-3`, ...), because clip_benchmark's `build` reads one object per file."""
    path = Path(path)
    if len(results) == 1:
        return [path]
    paths: list[Path] = []
    for result in results:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", result.model).strip("._-") or "model"
        candidate, n = path.with_name(f"{path.stem}-{slug}{path.suffix or '.json'}"), 1
        while candidate in paths:
            n += 1
            candidate = path.with_name(f"{path.stem}-{slug}-{n}{path.suffix or '.json'}")
        paths.append(candidate)
    return paths


def write_json(results: list[EvalResult], path: Path) -> list[Path]:
    """Each result as clip_benchmark's object, in the files `json_paths` names; returns those paths."""
    paths = json_paths(results, path)
    for result, target in zip(results, paths, strict=True):
        atomic.write_text(target, json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n")
    return paths


def format_table(results: list[EvalResult]) -> str:
    """Metrics as rows, models as columns, values in percent; counts below a rule."""
    models = [r.model for r in results]
    metric_names = list(dict.fromkeys(name for r in results for name in r.metrics))
    count_names = list(dict.fromkeys(name for r in results for name in r.counts))
    rows = [["metric", *models]]
    for name in metric_names:
        rows.append([name, *(_percent(r.metrics.get(name)) for r in results)])
    separator_at = len(rows)
    for name in count_names:
        rows.append([name, *(str(r.counts.get(name, "-")) for r in results)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(row: list[str]) -> str:
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * width for width in widths)
    out = [line(rows[0]), rule, *(line(row) for row in rows[1:separator_at])]
    if count_names:
        out += [rule, *(line(row) for row in rows[separator_at:])]
    title = f"{results[0].task} on {results[0].dataset} (metrics in %)"
    return "\n".join([title, *out]) + "\n"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def plot_bars(results: list[EvalResult], path: Path) -> None:
    """A grouped bar chart: one group per metric, one bar per model (PNG)."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window
    import matplotlib.pyplot as plt
    import numpy as np

    metric_names = list(dict.fromkeys(name for r in results for name in r.metrics))
    x = np.arange(len(metric_names))
    width = 0.8 / len(results)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(metric_names) * max(1, len(results)) + 2), 4.5))
    for i, result in enumerate(results):
        values = [100 * result.metrics.get(name, float("nan")) for name in metric_names]
        ax.bar(x + (i - (len(results) - 1) / 2) * width, values, width, label=result.model)
    ax.set_xticks(x, metric_names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax.set_title(f"{results[0].task} on {results[0].dataset}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
