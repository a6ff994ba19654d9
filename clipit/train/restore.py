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
from clipit.train.model_state import split_model


def is_run_dir(path: str | Path) -> bool:
    path = Path(path)
    return (path / RESOLVED_CONFIG_NAME).is_file() and (path / "checkpoints").is_dir()


def load_run_model(run_dir: str | Path, *, step: int | None = None) -> tuple[DualEncoder, ModelConfig, str | None]:
    """(model with the latest checkpoint's parameters, its [model] config, its tokenizer folder or id)."""
    run_dir = Path(run_dir)
    config_path = run_dir / RESOLVED_CONFIG_NAME
    if not config_path.is_file():
        raise ModelError(f"{run_dir}: no {RESOLVED_CONFIG_NAME}", "is this a clipit run folder (`clipit train --out`)?")
    config = load_config(config_path)
    checkpoints = RunCheckpoints(run_dir, read_only=True)
    try:
        step = step if step is not None else checkpoints.latest_step()
        if step is None:
            raise ModelError(f"{run_dir}: no checkpoint yet", "train longer or wait for the first checkpoint")
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


def export_run(run_dir: str | Path, out: str | Path, *, step: int | None = None) -> Path:
    """Write the run's latest (or given) checkpoint as an HF VisionTextDualEncoder folder."""
    from clipit.models.export import export_hf

    model, model_cfg, tokenizer = load_run_model(run_dir, step=step)
    if tokenizer is None:
        raise ModelError(f"{run_dir}: its config names no tokenizer", "set model.tokenizer in the run's config")
    return export_hf(model, out, tokenizer_dir=tokenizer, image_size=model_cfg.vision.image_size)
