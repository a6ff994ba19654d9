"""The run folder's layout: every name `clipit train --out RUN_DIR` writes, in one place.

```
RUN_DIR/
  config.resolved.toml   the run's whole config (absolute paths): what --resume and the readers load
  checkpoints/<step>/    orbax checkpoints (clipit.runs.checkpoints)
  metrics.jsonl          one JSON object per logged step (clipit.runs.metrics)
  tensorboard/           the same metrics as TensorBoard events
  curves.png             the curves of metrics.jsonl
  export/                the final model as an HF VisionTextDualEncoder folder with its model card
```
"""

from __future__ import annotations

from pathlib import Path

from clipit.config.load import RESOLVED_CONFIG_NAME

CHECKPOINTS_DIR = "checkpoints"
EXPORT_DIR = "export"
METRICS_NAME = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
PLOT_NAME = "curves.png"
CONFIG_NAME = RESOLVED_CONFIG_NAME  # every output folder of clipit has one; a run's is its whole truth


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir).absolute() / CHECKPOINTS_DIR


def config_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / CONFIG_NAME


def export_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / EXPORT_DIR


def is_run_dir(path: str | Path) -> bool:
    """A clipit run has its resolved config and a checkpoints folder; an HF folder has config.json."""
    path = Path(path)
    return config_path(path).is_file() and (path / CHECKPOINTS_DIR).is_dir()


def has_checkpoints(run_dir: str | Path) -> bool:
    """Whether a run already saved at least one step (a finished orbax step folder is named by its step)."""
    folder = checkpoint_dir(run_dir)
    return folder.is_dir() and any(p.name.isdigit() for p in folder.iterdir())
