"""End to end: the tiny run of the trainer tests, evaluated by `clipit eval` code on the synthetic sets,
beats chance (zero-shot colour, and retrieval both ways)."""

from __future__ import annotations

from clipit.config.data import SyntheticSource
from clipit.data.synthetic import generate
from clipit.encode import open_model
from clipit.eval import retrieval, zeroshot
from clipit.eval.synthetic import synthetic_tasks
from tests.support.tiny_train import SIDE


def test_tiny_trained_run_beats_chance_on_the_synthetic_sets(tiny_run, tmp_path):
    run_dir, _, _ = tiny_run
    sets = tmp_path / "synthetic"
    generate(SyntheticSource(out=sets, n=8, image_size=SIDE, zeroshot_per_class=12, retrieval_images=24))
    encoder = open_model(str(run_dir))

    tasks = [t for t in synthetic_tasks(sets) if t.name == "colour"]
    result = zeroshot.evaluate(encoder, tasks, dataset="synthetic", model_name="tiny", batch_size=32)
    assert result.metrics["acc1"] >= 2 * (1 / 8), result.metrics  # 8 colours: chance is 12.5%

    captions = retrieval.read_coco_captions(
        sets / "retrieval" / "captions.json", sets / "retrieval" / "images"
    )
    ranked = retrieval.evaluate(encoder, captions, dataset="synthetic", model_name="tiny", batch_size=32)
    # The run saw only one-object scenes; the retrieval set has two-group scenes too, so the margin over
    # chance is smaller there than for colour.
    chance_at_5 = 5 / 24
    assert ranked.metrics["image_retrieval_recall@5"] > chance_at_5, ranked.metrics
    assert ranked.metrics["text_retrieval_recall@5"] > chance_at_5, ranked.metrics
