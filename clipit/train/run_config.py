"""The config of a run: what `train` saves in the run folder, and what a resume may change in it.

A run folder's `config.resolved.toml` is the whole truth about the run: `--data`/`--out` are folded into
`train.data`/`train.out`, every local path is absolute (the folder then works from any working
directory), and the tokenizer the run used is named even when it came from the shards folder.

A resume continues the run's maths exactly, so it may change only what does not touch parameters, data
order or the optimizer: logging, evaluation and checkpoint cadence, loader workers. `HARMLESS_ON_RESUME`
lists those keys; any other difference in the sections training reads is refused, naming the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clipit.config import Config, load_config
from clipit.errors import ConfigError
from clipit.runs.layout import config_path
from clipit.train.evaluators import absolute_paths

TOKENIZER_DIR = "tokenizer"  # build-shards copies the sources' tokenizer here

# The sections the trainer reads; the others (download, translate, eval, ...) never change a run.
TRAINING_SECTIONS = ("model", "train", "data.loader")

# Keys (or key prefixes) a resume may change: none of them alters parameters, data order or optimizer.
HARMLESS_ON_RESUME = (
    "train.out",  # the run folder itself (it may have been moved)
    "train.log_every",
    "train.eval_every",
    "train.val_batches",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.export",
    "train.compilation_cache",  # the same compiled code, from disk or compiled again
    "train.distributed",  # where the processes meet, not what they compute
    "train.mesh",  # where parameters live (data x fsdp), not what a step computes
    "model.remat",  # recomputes activations in the backward pass: the same numbers, less memory
    "train.micro_batch_size",  # GradCache gives the full-batch update: a smaller one after running out of memory
    "train.evaluators",  # measured, never trained on
    "train.best_by",  # which checkpoint is kept as the best, not what any step computes
    "train.best_mode",
    "data.loader.workers",  # grain's position does not depend on the worker count
    "data.loader.prefetch",
)


def run_config(config: Config, *, data: str | Path | None = None, out: str | Path | None = None) -> Config:
    """`config` with the `--data`/`--out` flags folded in, every local path absolute and the tokenizer named."""
    config = absolute_model_paths(config)
    train = config.train
    data_dir = Path(data if data is not None else train.data).absolute()
    run_dir = Path(out if out is not None else train.out).absolute()
    evaluators = absolute_paths(train.evaluators)
    config = config.model_copy(
        update={
            "train": train.model_copy(update={"data": data_dir, "out": run_dir, "evaluators": evaluators})
        }
    )
    return _with_shards_tokenizer(config)


def absolute_model_paths(config: Config) -> Config:
    """Local folders named in [model] as absolute paths (hub ids stay as they are)."""

    def fix(value: str | None) -> str | None:
        return str(Path(value).absolute()) if value and Path(value).exists() else value

    model = config.model
    updated = model.model_copy(
        update={
            "init_from": fix(model.init_from),
            "tokenizer": fix(model.tokenizer),
            "vision": model.vision.model_copy(update={"pretrained": fix(model.vision.pretrained)}),
            "text": model.text.model_copy(update={"pretrained": fix(model.text.pretrained)}),
        }
    )
    return config.model_copy(update={"model": updated})


def _with_shards_tokenizer(config: Config) -> Config:
    """Name the tokenizer build-shards copied beside the shards when nothing else names one."""
    model = config.model
    if model.tokenizer or model.text.pretrained or model.init_from:
        return config
    folder = config.train.data / TOKENIZER_DIR
    if not folder.is_dir():
        return config
    return config.model_copy(update={"model": model.model_copy(update={"tokenizer": str(folder)})})


def resume_config(run_dir: str | Path, overrides: list[str]) -> Config | None:
    """The run's own saved config with `overrides` applied, or None when `run_dir` has none yet."""
    path = config_path(run_dir)
    return load_config(path, overrides) if path.is_file() else None


def check_resume(config: Config, run_dir: str | Path) -> None:
    """Refuse a resume whose config differs from the run's saved one in a key that changes its maths."""
    path = config_path(run_dir)
    if not path.is_file():
        return
    saved = _flat(run_config(load_config(path)).model_dump(mode="json"))
    given = _flat(config.model_dump(mode="json"))
    for key in sorted(saved.keys() | given.keys()):
        if not key.startswith(tuple(f"{s}." for s in TRAINING_SECTIONS)) or _harmless(key):
            continue
        if saved.get(key) != given.get(key):
            raise ConfigError(
                f"--resume: {key} is {_show(saved.get(key))} in {path} but {_show(given.get(key))} was given",
                "a resumed run keeps its maths: drop that --set/flag/config value, or start a new run with another --out",
            )


def _harmless(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in HARMLESS_ON_RESUME)


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """{'a.b.0.c': leaf}; lists are indexed so that a changed phase names its own key."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in items:
        flat.update(_flat(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _show(value: Any) -> str:
    return "unset" if value is None else repr(value)
