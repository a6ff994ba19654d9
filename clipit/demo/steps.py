"""The demo's evaluation and search steps on a trained run, through the same library calls as
`clipit eval`, `clipit embed --out` and `clipit search`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clipit.config import Config
from clipit.eval.report import EvalResult

MODEL_NAME = "demo run"


def evaluate_run(config: Config, run_dir: Path, sources: Path) -> list[EvalResult]:
    """Zero-shot per attribute (and held-out compositions) and retrieval on the synthetic sets."""
    from clipit.encode import open_model
    from clipit.eval import retrieval, zeroshot
    from clipit.eval.synthetic import synthetic_tasks

    encoder = open_model(str(run_dir), dtype=config.eval.dtype)
    batch = config.eval.batch_size
    zero_shot = zeroshot.evaluate(
        encoder, synthetic_tasks(sources), dataset="synthetic", model_name=MODEL_NAME, batch_size=batch
    )
    captions = retrieval.read_coco_captions(
        sources / "retrieval" / "captions.json", sources / "retrieval" / "images"
    )
    ranked = retrieval.evaluate(
        encoder, captions, dataset="synthetic", model_name=MODEL_NAME, batch_size=batch
    )
    return [zero_shot, ranked]


def embed_and_search(
    config: Config, run_dir: Path, sources: Path, index_dir: Path, queries: tuple[str, ...], k: int = 8
) -> list[dict[str, Any]]:
    """Embed the retrieval images into a clip-retrieval-style folder, then rank it by each query."""
    from clipit.embed import embed_to_folder
    from clipit.encode import open_model
    from clipit.search import load_index, search, write_contact_sheet

    encoder = open_model(str(run_dir), dtype=config.embed.dtype)
    embed_to_folder(
        encoder,
        sources / "retrieval" / "images",
        index_dir,
        batch_size=config.embed.batch_size,
        shard_size=config.embed.shard_size,
    )
    index = load_index(index_dir)
    results = []
    for number, query in enumerate(queries):
        hits = search(encoder, index, query, k)
        sheet = index_dir / f"search-{number}.html"
        write_contact_sheet(hits, query, sheet)
        results.append(
            {
                "query": query,
                "html": str(sheet),
                "hits": [{"path": str(hit.path), "score": round(float(hit.score), 4)} for hit in hits],
            }
        )
    return results
