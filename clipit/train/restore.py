"""A trained run as a model: `load_run_model(RUN_DIR)` for eval, embed, search and `clipit export`.

The run folder holds its resolved config (written with absolute model paths, so it works from any
working directory) and its checkpoints; the latest checkpoint's parameters go into a freshly built
DualEncoder on the default device (any device count: only the parameters are read).
"""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp

from clipit.config import load_config
from clipit.config.load import RESOLVED_CONFIG_NAME
from clipit.config.model import ModelConfig
from clipit.errors import ModelError
from clipit.models.build import build_model
from clipit.models.dual_encoder import DualEncoder
from clipit.train.checkpoint import RunCheckpoints
from clipit.train.model_card import DEFAULT_LICENSE, render_card
from clipit.train.model_state import split_model


def is_run_dir(path: str | Path) -> bool:
    path = Path(path)
    return (path / RESOLVED_CONFIG_NAME).is_file() and (path / "checkpoints").is_dir()


def load_run_model(
    run_dir: str | Path, *, step: int | None = None
) -> tuple[DualEncoder, ModelConfig, str | None]:
    """(model with the latest checkpoint's parameters, its [model] config, its tokenizer folder or id)."""
    run_dir = Path(run_dir)
    config_path = run_dir / RESOLVED_CONFIG_NAME
    if not config_path.is_file():
        raise ModelError(
            f"{run_dir}: no {RESOLVED_CONFIG_NAME}", "is this a clipit run folder (`clipit train --out`)?"
        )
    config = load_config(config_path)
    checkpoints = RunCheckpoints(run_dir, read_only=True)
    try:
        kept = checkpoints.steps()
        step = step if step is not None else (kept[-1] if kept else None)
        if step is None:
            raise ModelError(f"{run_dir}: no checkpoint yet", "train longer or wait for the first checkpoint")
        if step not in kept:
            raise ModelError(
                f"{run_dir}: no checkpoint of step {step}",
                f"the kept steps are {', '.join(map(str, kept))} (train.keep_checkpoints keeps the last ones and the best)",
            )
        model, info = build_model(config.model, seed=config.train.seed)
        parts, params, rest = split_model(model)
        restored = checkpoints.restore_params(step, params)
    finally:
        checkpoints.close()
    missing = sorted(set(params) - set(restored))
    if missing:
        raise ModelError(f"{run_dir}: checkpoint {step} lacks {missing[0]} (and {len(missing) - 1} more)")
    model = parts.merge({k: jnp.asarray(v) for k, v in restored.items()}, rest)
    return model, config.model, config.model.tokenizer or info.tokenizer


def best_step(run_dir: str | Path) -> int:
    """The kept checkpoint with the lowest validation loss."""
    checkpoints = RunCheckpoints(run_dir, read_only=True)
    try:
        best = checkpoints.best_step()
    finally:
        checkpoints.close()
    if best is None:
        raise ModelError(
            f"{run_dir}: no checkpoint has a validation loss",
            "the run saw no validation (too few val rows for one batch?): export --step N or the latest",
        )
    return best


def export_run(
    run_dir: str | Path,
    out: str | Path,
    *,
    step: int | None = None,
    best: bool = False,
    license: str = DEFAULT_LICENSE,
) -> Path:
    """Write the run's latest (or given, or best by validation loss) checkpoint as an HF
    VisionTextDualEncoder folder, with a model card."""
    from clipit.models.export import export_hf

    if best:
        step = best_step(run_dir)
    model, model_cfg, tokenizer = load_run_model(run_dir, step=step)
    if tokenizer is None:
        raise ModelError(
            f"{run_dir}: its config names no tokenizer", "set model.tokenizer in the run's config"
        )
    config = load_config(Path(run_dir) / RESOLVED_CONFIG_NAME)
    card = render_card(config, run_dir, step if step is not None else _latest(run_dir), license=license)
    return export_hf(
        model,
        out,
        tokenizer_dir=tokenizer,
        image_size=model_cfg.vision.image_size,
        text_length=model_cfg.max_text_length,
        card=card,
    )


def _latest(run_dir: str | Path) -> int | None:
    checkpoints = RunCheckpoints(run_dir, read_only=True)
    try:
        return checkpoints.latest_step()
    finally:
        checkpoints.close()
