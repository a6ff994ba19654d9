"""A trained run as a model: `load_run_model(RUN_DIR)` for eval, embed, search, serve and `clipit export`.

The run folder holds its resolved config (written with absolute model paths, so it works from any
working directory) and its checkpoints; a checkpoint's parameters (the latest, or a given step) go into
a freshly built DualEncoder on the default device (any device count: only the parameters are read).
"""

from __future__ import annotations

from pathlib import Path

from clipit.config import load_config
from clipit.config.model import ModelConfig
from clipit.errors import ModelError
from clipit.models.build import build_model
from clipit.models.dual_encoder import DualEncoder
from clipit.runs.checkpoints import DEFAULT_BEST_BY, RunCheckpoints
from clipit.runs.layout import CONFIG_NAME, config_path
from clipit.runs.params import model_params, set_model_params


def load_run_model(
    run_dir: str | Path, *, step: int | None = None
) -> tuple[DualEncoder, ModelConfig, str | None]:
    """(model with the latest (or `step`'s) checkpoint's parameters, its [model] config, its tokenizer
    folder or id)."""
    run_dir = Path(run_dir)
    path = config_path(run_dir)
    if not path.is_file():
        raise ModelError(
            f"{run_dir}: no {CONFIG_NAME}", "is this a clipit run folder (`clipit train --out`)?"
        )
    config = load_config(path)
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
        params = model_params(model)
        restored = checkpoints.restore_params(step, params)
    finally:
        checkpoints.close()
    missing = sorted(set(params) - set(restored))
    if missing:
        raise ModelError(f"{run_dir}: checkpoint {step} lacks {missing[0]} (and {len(missing) - 1} more)")
    set_model_params(model, restored)
    return model, config.model, config.model.tokenizer or info.tokenizer


def best_step(run_dir: str | Path) -> int:
    """The kept checkpoint that is best by the run's `train.best_by` (default: lowest validation loss)."""
    path = config_path(run_dir)
    train = load_config(path).train if path.is_file() else None
    best_by = train.best_by if train is not None else DEFAULT_BEST_BY
    checkpoints = RunCheckpoints(
        run_dir, read_only=True, best_by=best_by, best_mode=train.best_mode if train is not None else None
    )
    try:
        best = checkpoints.best_step()
    finally:
        checkpoints.close()
    if best is None:
        raise ModelError(
            f"{run_dir}: no kept checkpoint measured {best_by} (train.best_by)",
            "the run saw no validation or evaluator at a checkpoint step: export --step N or the latest",
        )
    return best


def latest_step(run_dir: str | Path) -> int | None:
    checkpoints = RunCheckpoints(run_dir, read_only=True)
    try:
        return checkpoints.latest_step()
    finally:
        checkpoints.close()
