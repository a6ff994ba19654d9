"""The demo's steps, in order: download synthetic, (translate: shown), build-shards, train, eval, embed, search.

Each step is the same library call the matching command makes; the demo only points every path into
one output folder, so `clipit demo --out DIR` leaves a folder a user can explore with the other
commands. Config: the given one (`--config`/`--set`), else the repo-shipped `configs/tiny.toml`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from clipit.config import Config, load_config, save_resolved, validate_config
from clipit.console import err_console, info
from clipit.errors import ConfigError

DEFAULT_OUT = Path("demo-out")
SEARCH_QUERIES = ("due cerchi rossi", "una stella gialla su sfondo nero")
TINY_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny.toml"


def demo_config(config_path: Path | None, overrides: list[str], out: Path) -> Config:
    """The demo's config: `config_path` (default configs/tiny.toml), overrides, every path under `out`."""
    if config_path is None:
        config_path = TINY_CONFIG
        if not config_path.is_file():
            raise ConfigError(
                f"{config_path} is missing", "pass --config with a tiny config (see configs/tiny.toml)"
            )
    base = load_config(config_path, overrides)
    raw = base.model_dump(mode="json", exclude_none=True)
    sources = out / "sources" / "synthetic"
    shards = out / "shards"
    run = out / "run"
    raw["data"]["synthetic"]["out"] = str(sources)
    raw["data"]["shards"]["sources"] = [str(sources)]
    raw["data"]["shards"]["out"] = str(shards)
    raw["model"]["tokenizer"] = str(sources / "tokenizer")
    raw["train"]["data"] = str(shards)
    raw["train"]["out"] = str(run)
    return validate_config(raw, source=str(config_path))


def _step(number: int, title: str) -> float:
    err_console.rule(f"[bold]{number}. {title}")
    return time.perf_counter()


def run_demo(config: Config, out: Path) -> dict[str, Any]:
    """Run every step and write the report; returns the summary the CLI prints."""
    from clipit.data import shards as shard_builder
    from clipit.data import synthetic
    from clipit.demo.report import write_report
    from clipit.demo.steps import embed_and_search, evaluate_run

    out.mkdir(parents=True, exist_ok=True)
    save_resolved(config, out)
    timings: dict[str, float] = {}
    sources = Path(config.data.synthetic.out)

    start = _step(1, "download synthetic")
    data_summary = synthetic.generate(config.data.synthetic, val_fraction=config.data.shards.val_fraction)
    timings["download"] = time.perf_counter() - start

    _step(2, "translate (shown, not run: it needs a translation service or model weights)")
    info(
        "The synthetic captions are written in Italian already. For an English source you would run:\n"
        f"  clipit translate --input {sources / 'manifest.parquet'} --to it --backend google\n"
        "  (or --backend libre --endpoint http://host:5000/, or --backend marian for an offline model)"
    )

    start = _step(3, "build-shards")
    shard_summary = shard_builder.run(config.data.shards)
    timings["build_shards"] = time.perf_counter() - start

    start = _step(4, "train")
    from clipit.train.loop import train_and_evaluate

    train_summary = train_and_evaluate(config)
    timings["train"] = time.perf_counter() - start

    start = _step(5, "eval zero-shot and retrieval")
    results = evaluate_run(config, Path(config.train.out), sources)
    timings["eval"] = time.perf_counter() - start

    start = _step(6, "embed and search")
    searches = embed_and_search(config, Path(config.train.out), sources, out / "embeddings", SEARCH_QUERIES)
    timings["embed_search"] = time.perf_counter() - start

    summary = {
        "out": str(out),
        "data": data_summary,
        "shards": shard_summary,
        "train": train_summary,
        "eval": [r.to_json() for r in results],
        "search": searches,
        "index": str((out / "embeddings").resolve()),  # what `clipit serve --index` takes
        "seconds": {k: round(v, 1) for k, v in timings.items()},
    }
    summary["report"] = str(write_report(summary, out / "report", Path(config.train.out)))
    return summary
