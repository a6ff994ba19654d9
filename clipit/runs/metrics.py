"""Reading a run's `metrics.jsonl`: one JSON object per logged step, naming its `phase`, `step`
(global) and `split` ('train', 'val' or a `[[train.evaluators]]` name). The trainer writes it (clipit.train.metrics)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clipit.runs.layout import METRICS_NAME


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / METRICS_NAME
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # the last line of a killed write
    return rows
