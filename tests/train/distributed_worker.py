"""One process of a 2-process jax.distributed job on CPU (run by test_distributed.py).

argv: process_id, port, shards folder, run folder, output JSON. It (1) takes one train step on a
fixed global batch, feeding only this process's half, and records the loss and updated parameters'
checksum; (2) runs a short `train_and_evaluate` to show the whole trainer (loader shares, validation
over every val batch, checkpoints, export) works across processes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax


def main() -> None:
    process_id, port, shards, run_dir, output = sys.argv[1:6]
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=int(process_id)
    )
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from clipit.config import load_config
    from clipit.train.loop import train_and_evaluate
    from tests.support.tiny_train import run_overrides
    from tests.train.step_check import one_step_on_fixed_batch

    overrides = run_overrides(Path(shards), Path(run_dir))
    config = load_config(None, overrides)
    result = one_step_on_fixed_batch(config, jax.devices())
    short = load_config(
        None,
        [
            *overrides,
            'train.phases=[{name="heads", steps=2, trainable=["projection"]}, {name="all", steps=2}]',
            "train.val_batches=1000",  # every val batch, to the end of the split
        ],
    )
    summary = train_and_evaluate(short)
    result["steps"] = summary["steps"]
    result["val"] = summary["val"]
    result["process_count"] = jax.process_count()
    Path(output).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
