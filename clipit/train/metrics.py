"""Writing run metrics: `RUN_DIR/metrics.jsonl` (one JSON object per logged step) and TensorBoard events.

Every line names its `phase`, `step` (global) and `split` ('train', 'val' or an evaluator's name). Only process 0 writes.
On resume, lines of steps after the restored checkpoint (logged before the kill, then redone) are
dropped, so each step appears once.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from clipit import atomic
from clipit.runs.layout import METRICS_NAME, TENSORBOARD_DIR
from clipit.runs.metrics import read_metrics


class MetricsLog:
    def __init__(self, run_dir: str | Path, *, enabled: bool = True, resume_step: int | None = None):
        self.path = Path(run_dir) / METRICS_NAME
        self.enabled = enabled
        self._tb = None
        if not enabled:
            return
        if resume_step is None:
            atomic.write_text(self.path, "")
        else:
            kept = [r for r in read_metrics(run_dir) if r.get("step", 0) <= resume_step]
            atomic.write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        try:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(str(Path(run_dir) / TENSORBOARD_DIR))
        except ImportError:  # optional: metrics.jsonl is the record
            self._tb = None

    def write(self, *, phase: str, step: int, split: str, values: dict[str, float]) -> dict[str, Any]:
        row = {"phase": phase, "step": step, "split": split}
        row.update({k: _plain(v) for k, v in values.items()})
        if self.enabled:
            self._file.write(json.dumps(row) + "\n")
            self._file.flush()
            if self._tb is not None:
                for key, value in row.items():
                    if isinstance(value, float) and math.isfinite(value):
                        self._tb.add_scalar(f"{split}/{key}", value, step)
        return row

    def close(self) -> None:
        if self.enabled:
            self._file.close()
            if self._tb is not None:
                self._tb.close()


def _plain(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return value
