"""A PNG of a run's curves (loss, validation retrieval, learning rate and, when the run has
`[[train.evaluators]]`, their headline metrics) from metrics.jsonl."""

from __future__ import annotations

from pathlib import Path

from clipit import atomic
from clipit.runs.layout import PLOT_NAME
from clipit.runs.metrics import read_metrics

HEADLINE = ("acc1", "retrieval_recall@1")  # evaluator metrics drawn (all are in metrics.jsonl)


def plot_run(run_dir: str | Path) -> Path | None:
    rows = read_metrics(run_dir)
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt

    train = [r for r in rows if r["split"] == "train"]
    val = [r for r in rows if r["split"] == "val"]
    evaluated = [r for r in rows if r["split"] not in ("train", "val")]
    fig, axes = plt.subplots(1, 4 if evaluated else 3, figsize=(20 if evaluated else 15, 4))
    for phase in dict.fromkeys(r["phase"] for r in train):  # one colour per phase, in run order
        part = [r for r in train if r["phase"] == phase]
        axes[0].plot([r["step"] for r in part], [r["loss"] for r in part], label=f"train: {phase}")
    axes[0].plot([r["step"] for r in val], [r["loss"] for r in val], "o-", label="val")
    axes[0].set_title("loss")
    for key in ("i2t_r@1", "t2i_r@1", "i2t_r@5", "t2i_r@5"):
        if val and key in val[0]:
            axes[1].plot([r["step"] for r in val], [r[key] for r in val], "o-", label=key)
    axes[1].set_title("validation retrieval (in-batch)")
    axes[2].plot([r["step"] for r in train], [r["lr"] for r in train])
    axes[2].set_title("learning rate")
    for boundary in _phase_starts(train):
        for ax in axes:
            ax.axvline(boundary, color="grey", linestyle=":")
    if evaluated:
        _plot_evaluators(axes[3], evaluated)
    for ax in [*axes[:2], *axes[3:]]:
        ax.set_xlabel("step")
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    target = Path(run_dir) / PLOT_NAME
    with atomic.atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
    return target


def _plot_evaluators(ax, rows: list[dict]) -> None:
    """Top-1 accuracy of each zero-shot task and recall@1 both ways of each retrieval set."""
    for split in dict.fromkeys(r["split"] for r in rows):
        part = [r for r in rows if r["split"] == split]
        keys = dict.fromkeys(k for r in part for k in r if k.endswith(HEADLINE))
        for key in keys:
            points = [(r["step"], r[key]) for r in part if key in r]
            ax.plot(*zip(*points, strict=True), "o-", label=f"{split}/{key}")
    ax.set_title("evaluators")


def _phase_starts(train: list[dict]) -> list[int]:
    return [b["step"] for a, b in zip(train, train[1:], strict=False) if a["phase"] != b["phase"]]
