"""`[[train.evaluators]]`: `clipit eval` tasks run on the current parameters during training.

Each evaluator is read and checked when the run starts (a missing path or an unreadable class list stops
the run before any compute), then runs at its cadence (`every`, default `train.eval_every`, and at the
end of each phase) on the parameters of that step. It encodes with `clipit eval`'s own code: an
`Encoder` over the in-memory model (clipit.encode: its batching, eval transform and tokenisation) fed to
clipit.eval.zeroshot / clipit.eval.retrieval's `evaluate`, so the numbers equal `clipit eval` on the
checkpoint of that step. Its metrics are logged with `split` = the evaluator's name
('synthetic', 'imagenet-it', ...): `synthetic/shape/acc1`, `mscoco-it/image_retrieval_recall@5`.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jax
import numpy as np

from clipit.config import Config
from clipit.config.train import EvaluatorConfig
from clipit.console import warn
from clipit.data.manifest import MANIFEST_NAME
from clipit.data.shard_format import list_shards
from clipit.errors import ConfigError
from clipit.eval import retrieval, zeroshot
from clipit.eval.image_sets import LabelledImages
from clipit.eval.retrieval import CaptionSet
from clipit.eval.shard_captions import spread, write_eval_folder
from clipit.eval.tasks import Task, imagenet_task
from clipit.train.mesh import to_host

PATH_KEYS = ("data", "images", "classnames", "templates", "labels")
CAPTIONS_FILE, IMAGES_DIR = "captions.json", "images"  # an eval folder (`download synthetic`'s retrieval/)
SHARDS_SPLIT = "val"  # a shards folder as a retrieval set: its held-out rows


@dataclass(frozen=True)
class Evaluator:
    config: EvaluatorConfig
    every: int
    tasks: list[Task] | None = None  # zero-shot
    captions: CaptionSet | None = None  # retrieval

    @property
    def name(self) -> str:
        return self.config.split

    def due(self, step: int, phase_done: bool) -> bool:
        return step % self.every == 0 or phase_done

    def run(self, encoder) -> dict[str, float]:
        """The metrics `clipit eval` reports for this task, with the encoder's model."""
        cfg = self.config
        if self.tasks is not None:
            result = zeroshot.evaluate(
                encoder, self.tasks, dataset=cfg.benchmark, model_name=cfg.split, batch_size=cfg.batch_size
            )
        else:
            result = retrieval.evaluate(
                encoder, self.captions, dataset=cfg.benchmark, model_name=cfg.split, batch_size=cfg.batch_size
            )
        return dict(result.metrics)


def absolute_paths(evaluators: list[EvaluatorConfig]) -> list[EvaluatorConfig]:
    """Every path of every evaluator absolute (a run's saved config works from any folder)."""
    return [
        e.model_copy(
            update={
                k: Path(getattr(e, k)).expanduser().absolute() for k in PATH_KEYS if getattr(e, k) is not None
            }
        )
        for e in evaluators
    ]


def build_evaluators(config: Config) -> list[Evaluator]:
    """Check and read every `[[train.evaluators]]` entry (class lists, image lists, caption files)."""
    evaluators = []
    for index, cfg in enumerate(config.train.evaluators):
        where = f"train.evaluators[{index}]"
        for key in PATH_KEYS:
            path = getattr(cfg, key)
            if path is not None and not Path(path).exists():
                raise ConfigError(f"{where}.{key}: {path} does not exist", f"fix the path of {where}.{key}")
        every = cfg.every or config.train.eval_every
        if cfg.kind == "zero-shot":
            tasks = [_subset_task(t, cfg.max_images) for t in _zero_shot_tasks(config, cfg, where)]
            evaluators.append(Evaluator(cfg, every, tasks=tasks))
        else:
            captions = _subset_captions(_caption_set(cfg, where), cfg.max_images)
            evaluators.append(Evaluator(cfg, every, captions=captions))
    return evaluators


def check_best_by(config: Config) -> None:
    """`train.best_by` must name a metric some split logs: 'val/...' or '<evaluator name>/...'."""
    split = config.train.best_by.split("/", 1)[0]
    splits = ["val", *(e.split for e in config.train.evaluators)]
    if split not in splits:
        raise ConfigError(
            f"train.best_by {config.train.best_by!r}: no split {split!r} is logged at checkpoints",
            f"name a metric of {', '.join(repr(s) for s in splits)} ('val/loss', '<evaluator name>/<metric>')",
        )


def _zero_shot_tasks(config: Config, cfg: EvaluatorConfig, where: str) -> list[Task]:
    if cfg.images is not None:
        raise ConfigError(f"{where}.images is for retrieval evaluators", f"remove {where}.images")
    if cfg.benchmark == "synthetic":
        from clipit.eval.synthetic import synthetic_tasks

        return synthetic_tasks(cfg.data, classnames=cfg.classnames, templates=cfg.templates)
    return [
        imagenet_task(
            cfg.data,
            classnames=cfg.classnames,
            templates=cfg.templates,
            labels=cfg.labels,
            cache_dir=config.eval.cache_dir,
            base_url=config.eval.classnames_url,
        )
    ]


def _caption_set(cfg: EvaluatorConfig, where: str) -> CaptionSet:
    for key in ("classnames", "templates", "labels"):
        if getattr(cfg, key) is not None:
            raise ConfigError(f"{where}.{key} is for zero-shot evaluators", f"remove {where}.{key}")
    data = Path(cfg.data)
    shards = data.parent if data.name == MANIFEST_NAME else data
    if data.name == MANIFEST_NAME or (data.is_dir() and list_shards(data, SHARDS_SPLIT)):
        if cfg.images is not None:
            raise ConfigError(f"{where}.images is for a COCO caption file", f"remove {where}.images")
        # The split's images and captions as an eval folder of this process, removed at exit.
        folder = Path(tempfile.mkdtemp(prefix="clipit-evaluator-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        data = write_eval_folder(shards, SHARDS_SPLIT, folder / "set", max_images=cfg.max_images)
        return retrieval.read_coco_captions(data / CAPTIONS_FILE, data / IMAGES_DIR)
    if data.is_dir():
        annotations, images = data / CAPTIONS_FILE, cfg.images or data / IMAGES_DIR
        if not annotations.is_file():
            raise ConfigError(
                f"{where}.data: {data} holds no {CAPTIONS_FILE}",
                f"pass an eval folder ({CAPTIONS_FILE} + {IMAGES_DIR}/) or a COCO caption JSON with {where}.images",
            )
    else:
        annotations, images = data, cfg.images
        if images is None:
            raise ConfigError(
                f"{where}.images is missing: {data} is a caption file",
                f"set {where}.images to its images folder",
            )
    return retrieval.read_coco_captions(annotations, images)


def _subset_task(task: Task, limit: int | None) -> Task:
    keep = spread(len(task.images.paths), limit)
    if len(keep) == len(task.images.paths):
        return task
    images = LabelledImages(
        [task.images.paths[i] for i in keep], task.images.labels[keep], task.images.n_classes
    )
    return replace(task, images=images)


def _subset_captions(captions: CaptionSet, limit: int | None) -> CaptionSet:
    keep = spread(len(captions.image_paths), limit)
    if len(keep) == len(captions.image_paths):
        return captions
    renumber = np.full(len(captions.image_paths), -1, dtype=np.int64)
    renumber[keep] = np.arange(len(keep))
    kept_caption = renumber[captions.caption_image] >= 0
    return CaptionSet(
        image_paths=[captions.image_paths[i] for i in keep],
        captions=[c for c, k in zip(captions.captions, kept_caption, strict=True) if k],
        caption_image=renumber[captions.caption_image][kept_caption],
        images_without_captions=captions.images_without_captions,
    )


class RunEvaluators:
    """The run's evaluators over its in-memory model: one `Encoder` per evaluation step (its compiled
    forward passes capture the parameters), the tokenizer loaded once."""

    def __init__(self, evaluators: list[Evaluator], model_cfg, tokenizer_path: str | Path | None) -> None:
        self.evaluators = evaluators
        self.model_cfg = model_cfg
        self.tokenizer_path = str(tokenizer_path) if tokenizer_path is not None else None
        self._tokenizer: Any = None
        self._max_length = model_cfg.max_text_length
        self._best_by_checked = False

    def due(self, step: int, phase_done: bool) -> list[Evaluator]:
        return [e for e in self.evaluators if e.due(step, phase_done)]

    def run(self, due: list[Evaluator], parts, params, rest) -> dict[str, dict[str, float]]:
        """{evaluator name: metrics} of the model with the step's (replicated) `params` and `rest`."""
        from clipit.encode import Encoder

        # This process's own copy of each array, left on its device: no trip through the host, and
        # the encoder's forward passes run on one local device as `clipit eval`'s do. Arrays split
        # over train.mesh's fsdp axis are gathered first.
        local = jax.tree.map(
            lambda x: (
                (x.addressable_data(0) if x.is_fully_replicated else to_host(x))
                if isinstance(x, jax.Array)
                else x
            ),
            (params, rest),
        )
        encoder = Encoder(
            parts.merge(*local),
            self.tokenizer_path or "",
            self.model_cfg.vision.image_size,
            self._max_length,
            name="training",
            _tokenizer=self._tokenizer,
        )
        results = {e.name: e.run(encoder) for e in due}
        self._tokenizer, self._max_length = encoder._tokenizer, encoder.max_text_length
        return results

    def check_best_by(self, best_by: str, measured: dict[str, float]) -> None:
        """Warn once when `best_by`'s split was measured without that metric (a typo in its name):
        no checkpoint can then be the best, and only the latest ones are kept."""
        split = best_by.split("/", 1)[0]
        if self._best_by_checked or not any(k.startswith(split + "/") for k in measured):
            return
        self._best_by_checked = True
        if best_by not in measured:
            names = ", ".join(sorted(k for k in measured if k.startswith(split + "/")))
            warn(
                f"train.best_by {best_by!r} is not a logged metric ({names}): no checkpoint is kept as the best"
            )
