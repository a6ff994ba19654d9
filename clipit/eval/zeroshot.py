"""Zero-shot classification: ImageNet-IT, and the synthetic set per attribute.

The classifier is open_clip's and clip_benchmark's: for each class, embed every template filled with
the class name, L2-normalise, average over templates and re-normalise; an image is predicted by cosine
against these class vectors. Metrics are in clipit.eval.metrics.
"""

from __future__ import annotations

import numpy as np

from clipit.config.eval import EvalConfig
from clipit.errors import ConfigError, DataError
from clipit.eval import classnames as names
from clipit.eval.metrics import zero_shot_metrics
from clipit.eval.report import ZERO_SHOT_TASK, EvalResult
from clipit.eval.tasks import Task, imagenet_task
from clipit.models.normalize import l2_normalize


def build_classifier(encoder, classnames: list[str], templates: list[str], *, batch_size: int) -> np.ndarray:
    """[n_classes, D] unit vectors: the re-normalised mean of each class's normalised template embeddings."""
    texts = [names.fill(template, name) for name in classnames for template in templates]
    vectors = encoder.encode_texts(texts, batch_size=batch_size, description="class prompts")
    vectors = vectors.reshape(len(classnames), len(templates), -1)
    return l2_normalize(l2_normalize(vectors).mean(axis=1))


def evaluate(encoder, tasks: list[Task], *, dataset: str, model_name: str, batch_size: int) -> EvalResult:
    """Encode each task's images once and classify them; metrics are prefixed `<task>/` when there are
    several tasks (the synthetic attributes) and carry the chance level of each task beside them."""
    metrics: dict[str, float] = {}
    counts: dict[str, int] = {}
    for task in tasks:
        prefix = f"{task.name}/" if len(tasks) > 1 else ""
        classifier = build_classifier(encoder, task.classnames, task.templates, batch_size=batch_size)
        encoded = encoder.encode_images(
            task.images.paths, batch_size=batch_size, description=f"{task.name} images"
        )
        if not len(encoded.kept):
            raise DataError(f"no image of {task.name} could be read", "check the data folder")
        labels = task.images.labels[encoded.kept]
        for key, value in zero_shot_metrics(encoded.vectors, labels, classifier).items():
            metrics[prefix + key] = value
        if len(tasks) > 1:
            metrics[prefix + "chance"] = 1.0 / len(task.classnames)
        counts[prefix + "images"] = len(encoded.kept)
        counts[prefix + "unreadable_images"] = len(encoded.failures)
        counts[prefix + "classes"] = len(task.classnames)
    return EvalResult(dataset=dataset, model=model_name, task=ZERO_SHOT_TASK, metrics=metrics, counts=counts)


def run(cfg: EvalConfig) -> list[EvalResult]:
    """Evaluate every model of `cfg.model` on `cfg.zero_shot` (the data is read once)."""
    from clipit.encode import open_model

    settings = cfg.zero_shot
    if not cfg.model:
        raise ConfigError("no model to evaluate", "pass --model M (repeatable) or set eval.model")
    if settings.data is None:
        raise ConfigError("no data folder given", "pass --data DIR or set eval.zero_shot.data")
    if settings.dataset == "synthetic":
        from clipit.eval.synthetic import synthetic_tasks

        tasks = synthetic_tasks(settings.data, classnames=settings.classnames, templates=settings.templates)
    else:
        tasks = [
            imagenet_task(
                settings.data,
                classnames=settings.classnames,
                templates=settings.templates,
                labels=settings.labels,
                cache_dir=cfg.cache_dir,
                base_url=cfg.classnames_url,
            )
        ]
    results = []
    for spec in cfg.model:
        encoder = open_model(spec, dtype=cfg.dtype, compilation_cache=cfg.compilation_cache)
        results.append(
            evaluate(encoder, tasks, dataset=settings.dataset, model_name=spec, batch_size=cfg.batch_size)
        )
    return results
