"""`clipit export RUN_DIR`: a run's checkpoint as an HF VisionTextDualEncoder folder with a model card."""

from __future__ import annotations

from pathlib import Path

from clipit.config import load_config
from clipit.errors import ModelError
from clipit.runs.layout import config_path
from clipit.runs.model import best_step, latest_step, load_run_model
from clipit.runs.model_card import DEFAULT_LICENSE, render_card


def export_run(
    run_dir: str | Path,
    out: str | Path,
    *,
    step: int | None = None,
    best: bool = False,
    license: str = DEFAULT_LICENSE,
) -> Path:
    """Write the run's latest (or given, or best by train.best_by) checkpoint as an HF
    VisionTextDualEncoder folder, with a model card."""
    from clipit.models.export import export_hf

    if best:
        step = best_step(run_dir)
    model, model_cfg, tokenizer = load_run_model(run_dir, step=step)
    if tokenizer is None:
        raise ModelError(
            f"{run_dir}: its config names no tokenizer", "set model.tokenizer in the run's config"
        )
    config = load_config(config_path(run_dir))
    card = render_card(config, run_dir, step if step is not None else latest_step(run_dir), license=license)
    return export_hf(
        model,
        out,
        tokenizer_dir=tokenizer,
        image_size=model_cfg.vision.image_size,
        text_length=model_cfg.max_text_length,
        card=card,
    )
