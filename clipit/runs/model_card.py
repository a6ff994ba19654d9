"""The model card of an exported run: README.md with the Hub's YAML header, written into the export.

The header carries what the Hub indexes (language, license, library, pipeline, datasets, base models);
the body says how to load the model, how it was trained and, when the run validated or ran
evaluators, its metrics at the exported step.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clipit.config import Config
from clipit.data.shard_format import SUMMARY_NAME, list_shards
from clipit.runs.metrics import read_metrics

DEFAULT_LICENSE = "other"  # the weights inherit the licenses of the data and base models: the user states it
# Hub ids of the sources clipit downloads (the others are listed by their source name)
HUB_DATASETS = {"cc3m": "google-research-datasets/conceptual_captions", "wit": "google/wit"}


def render_card(
    config: Config, run_dir: str | Path, step: int | None, *, license: str = DEFAULT_LICENSE
) -> str:
    """The README.md text for the export of `run_dir` at checkpoint `step` (None: the end of training)."""
    metrics = _metrics_at(run_dir, step)
    header = {
        "language": [config.translate.to],
        "license": license,
        "library_name": "transformers",
        "pipeline_tag": "zero-shot-image-classification",
        "tags": ["clip", "vision-text-dual-encoder", "clipit"],
        "datasets": _datasets(Path(config.train.data)),
        "base_model": _base_models(config),
    }
    lines = ["---", *_yaml(header), "---", "", f"# {Path(run_dir).resolve().name}", ""]
    lines += [
        f"A CLIP model for `{config.translate.to}` trained with clipit: an HF VisionTextDualEncoder "
        f"({config.model.projection_dim}-d embeddings, {config.model.vision.image_size} px images, "
        f"texts up to {config.model.max_text_length} tokens).",
        "",
        "```python",
        "from transformers import VisionTextDualEncoderModel, VisionTextDualEncoderProcessor",
        "",
        'model = VisionTextDualEncoderModel.from_pretrained("PATH_OR_HUB_ID")',
        'processor = VisionTextDualEncoderProcessor.from_pretrained("PATH_OR_HUB_ID")',
        "```",
        "",
        "## Training",
        "",
        f"Global batch {config.train.batch_size}, loss `{config.train.loss}`"
        + (f", checkpoint of step {step}." if step is not None else ", the last step."),
        "",
        "| phase | steps or epochs | trainable | lr |",
        "|---|---|---|---|",
        *(
            f"| {p.name} | {p.steps if p.steps is not None else f'{p.epochs} epochs'} | "
            f"{', '.join(f'`{t}`' for t in p.trainable)} | {p.lr:g} |"
            for p in config.train.phases
        ),
    ]
    if metrics:
        lines += [
            "",
            "## Evaluation",
            "",
            f"Measured by the run at step {metrics['step']}: its validation split (loss and in-batch "
            "retrieval recall over train.val_batches batches, unprefixed) and its `[[train.evaluators]]` "
            f"(prefixed by their name). The best checkpoint is chosen by `{config.train.best_by}`.",
            "",
        ]
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" for k, v in metrics["values"].items()]
    return "\n".join(lines) + "\n"


def _metrics_at(run_dir: str | Path, step: int | None) -> dict[str, Any] | None:
    """The validation and evaluator rows of `step` (else of the last step measured): {'step', 'values'};
    None when the run never measured anything."""
    rows = [r for r in read_metrics(run_dir) if r.get("split") not in (None, "train")]
    if step is not None:
        rows = [r for r in rows if r.get("step") == step] or rows
    if not rows:
        return None
    measured = rows[-1]["step"]
    values = {
        f"{row['split']}/{k}" if row["split"] != "val" else k: float(v)
        for row in rows
        if row["step"] == measured
        for k, v in row.items()
        if k not in ("phase", "step", "split", "time")
        and isinstance(v, int | float)
        and not isinstance(v, bool)
    }
    return {"step": measured, "values": values} if values else None


def _datasets(data_dir: Path) -> list[str]:
    """The sources of the shards the run trained on: build-shards' summary, else the shards' `source` column."""
    try:
        names = list(json.loads((data_dir / SUMMARY_NAME).read_text(encoding="utf-8")).get("per_source", {}))
    except (OSError, ValueError):
        names = []
    if not names and data_dir.is_dir():
        import pyarrow.parquet as pq

        for path in list_shards(data_dir, "train"):
            try:
                column = pq.read_table(path, columns=["source"]).column("source").to_pylist()
            except (OSError, ValueError, KeyError):
                continue
            names += [n for n in dict.fromkeys(column) if n and n not in names]
    return [HUB_DATASETS.get(name, name) for name in names]


def _base_models(config: Config) -> list[str]:
    """Hub ids the towers started from (local folders are not ids)."""
    named = [config.model.init_from, config.model.vision.pretrained, config.model.text.pretrained]
    return [n for n in named if n and not Path(n).exists() and not n.startswith(("/", "."))]


def _yaml(header: dict[str, Any]) -> list[str]:
    """Block YAML for flat keys with string or list-of-string values (JSON strings are valid YAML scalars)."""
    lines = []
    for key, value in header.items():
        if isinstance(value, list):
            if value:
                lines += [f"{key}:", *(f"- {json.dumps(v)}" for v in value)]
        else:
            lines.append(f"{key}: {json.dumps(value)}")
    return lines
