"""`[train]`: the run, its loss and the list of phases that one loop runs in order."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from clipit.config.base import Section


class OptimizerSettings(Section):
    name: Literal["adamw", "adabelief"] = Field("adamw", description="Optimizer.")
    b1: float = Field(0.9, ge=0, lt=1, description="First-moment decay.")
    b2: float = Field(0.98, ge=0, lt=1, description="Second-moment decay.")
    eps: float = Field(1e-6, gt=0, description="Numerical epsilon.")
    weight_decay: float = Field(
        0.1, ge=0, description="Decoupled weight decay (never on biases, norms or the logit scale)."
    )
    clip: Literal["none", "global_norm", "adaptive"] = Field("none", description="Gradient clipping.")
    clip_value: float = Field(1.0, gt=0, description="Max global norm, or the adaptive clipping ratio.")


class PhaseConfig(Section):
    name: str = Field(description="Phase name, used in logs, metrics and checkpoints.")
    steps: int | None = Field(None, ge=1, description="Optimizer steps (set steps or epochs).")
    epochs: float | None = Field(None, gt=0, description="Passes over the train split.")
    trainable: list[str] = Field(
        default_factory=lambda: [".*"],
        description="Regexes over parameter paths ('text_model/...'); the rest is frozen.",
    )
    lr: float = Field(1e-4, gt=0, description="Peak learning rate.")
    warmup: float = Field(0.1, ge=0, le=1, description="Share of the phase spent in linear warmup.")
    end_lr_fraction: float = Field(0.0, ge=0, le=1, description="Cosine ends at lr times this.")
    optimizer: OptimizerSettings = Field(default_factory=OptimizerSettings)
    reset_optimizer: bool = Field(True, description="Start this phase with a fresh optimizer state.")
    cache_frozen: bool = Field(
        False, description="Compute frozen towers once and reuse their outputs (needs augment off)."
    )
    augment: bool | None = Field(None, description="Override data.loader.augment in this phase.")

    @field_validator("trainable")
    @classmethod
    def _regexes_compile(cls, patterns: list[str]) -> list[str]:
        # Compiled here so a typo fails at load, before any data is read or model is built.
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a valid regex: {exc}") from None
        return patterns

    @model_validator(mode="after")
    def _one_length(self) -> PhaseConfig:
        if (self.steps is None) == (self.epochs is None):
            raise ValueError(f"phase '{self.name}': set exactly one of 'steps' or 'epochs'")
        return self


def _default_phases() -> list[PhaseConfig]:
    return [
        PhaseConfig(name="heads", steps=1000, trainable=["projection", "logit_scale"], lr=5e-5),
        PhaseConfig(name="all", steps=5000, lr=1e-5),
    ]


class DistributedSettings(Section):
    coordinator: str | None = Field(
        None, description="host:port of process 0 (default: JAX_COORDINATOR_ADDRESS or TPU pod)."
    )
    coordinator_bind: str | None = Field(
        None,
        pattern=r"^\S+:\d+$",  # gRPC needs both parts; a bare host would fail only at start-up
        description="host:port process 0 listens on (default: the coordinator address itself, so "
        "127.0.0.1:PORT stays on loopback; 0.0.0.0:PORT or [::]:PORT for every interface).",
    )
    num_processes: int | None = Field(None, ge=1, description="Processes in the job.")
    process_id: int | None = Field(None, ge=0, description="This process's id.")


class MeshSettings(Section):
    """Device mesh: the batch is split over every device; parameters and optimizer state over `fsdp`."""

    data: int = Field(-1, ge=-1, description="Data-parallel axis size (-1 = the devices left after fsdp).")
    fsdp: int = Field(
        1,
        ge=1,
        description="Parameter-sharding axis size: weights and optimizer state split this many ways "
        "(1 = every device holds all of them).",
    )

    @field_validator("data")
    @classmethod
    def _data_not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("mesh.data must be -1 (the rest of the devices) or at least 1")
        return value


EVALUATOR_KINDS = ("zero-shot", "retrieval")
# Splits the trainer itself writes to metrics.jsonl: an evaluator may not take these names.
RESERVED_SPLITS = ("train", "val")


class EvaluatorConfig(Section):
    """One `[[train.evaluators]]` entry: a `clipit eval` task run on the current parameters."""

    kind: Literal["zero-shot", "retrieval"] = Field(description="zero-shot or retrieval.")
    name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Prefix of its metrics (default: the dataset, e.g. 'synthetic' or 'imagenet-it').",
    )
    dataset: Literal["imagenet-it", "mscoco-it", "synthetic"] | None = Field(
        None, description="Benchmark (default: imagenet-it for zero-shot, mscoco-it for retrieval)."
    )
    data: Path = Field(
        description="zero-shot: class folders (or `download synthetic`'s folder); retrieval: a folder with "
        "captions.json and images/, a COCO caption JSON (with `images`), or a build-shards folder or its "
        "manifest.parquet (its val split)."
    )
    images: Path | None = Field(None, description="retrieval with a caption JSON as data: its images folder.")
    classnames: Path | None = Field(
        None, description="zero-shot: class names file (default as `clipit eval`)."
    )
    templates: Path | None = Field(None, description="zero-shot: templates file (default as `clipit eval`).")
    labels: Path | None = Field(None, description="zero-shot: labels file for a flat image folder.")
    every: int | None = Field(None, ge=1, description="Steps between runs (default: train.eval_every).")
    max_images: int | None = Field(
        None, ge=1, description="Evaluate an evenly spread subset of this many images (default: all)."
    )
    batch_size: int = Field(64, ge=1, description="Images or texts per forward pass.")

    @model_validator(mode="after")
    def _dataset_fits_kind(self) -> EvaluatorConfig:
        allowed = ("imagenet-it", "synthetic") if self.kind == "zero-shot" else ("mscoco-it", "synthetic")
        if self.dataset is not None and self.dataset not in allowed:
            raise ValueError(
                f"dataset {self.dataset!r} is not a {self.kind} set: use one of {', '.join(allowed)}"
            )
        return self

    @property
    def benchmark(self) -> str:
        return self.dataset or ("imagenet-it" if self.kind == "zero-shot" else "mscoco-it")

    @property
    def split(self) -> str:
        """The evaluator's `split` in metrics.jsonl and its metric-name prefix."""
        return self.name or self.benchmark


class TrainConfig(Section):
    data: Path = Field(Path("shards"), description="Shards folder made by build-shards.")
    out: Path = Field(Path("runs/clipit"), description="Run folder: checkpoints, metrics, export.")
    batch_size: int = Field(256, ge=1, description="Global batch (all devices and hosts together).")
    micro_batch_size: int | None = Field(
        None,
        ge=1,
        description="Encode the global batch in micro-batches of this many rows (GradCache): less memory, "
        "the same update (all negatives kept). Divides batch_size and is a multiple of the device count.",
    )
    seed: int = Field(0, ge=0, description="Seed of init, data order and augmentation.")
    loss: Literal["infonce", "siglip"] = Field("infonce", description="Contrastive loss.")
    learn_logit_scale: bool = Field(True, description="Learn the logit scale (else fixed at init).")
    max_logit_scale: float = Field(100.0, gt=0, description="Upper clamp of the learnt scale.")
    fixed_logit_scale: float | None = Field(
        None, gt=0, description="A fixed scale (20 reproduces CLIP-Italian); overrides learning."
    )
    multi_positive: bool = Field(
        True, description="Identical captions in a batch count as positives of each other."
    )
    phases: list[PhaseConfig] = Field(default_factory=_default_phases, description="Phases, run in order.")
    log_every: int = Field(10, ge=1, description="Steps between metric lines.")
    eval_every: int = Field(500, ge=1, description="Steps between validations.")
    val_batches: int = Field(8, ge=1, description="Validation batches per evaluation.")
    checkpoint_every: int = Field(500, ge=1, description="Steps between checkpoints.")
    keep_checkpoints: int = Field(3, ge=1, description="Latest checkpoints kept (plus the best).")
    export: bool = Field(True, description="Write the HF export into RUN_DIR/export at the end.")
    compilation_cache: bool = Field(
        True,
        description="Keep compiled steps under the user cache folder (clipit/jax): a rerun of the same "
        "model, batch and phases starts without compiling.",
    )
    evaluators: list[EvaluatorConfig] = Field(
        default_factory=list,
        description="Zero-shot and retrieval tasks run on the current parameters every `every` steps.",
    )
    best_by: str = Field(
        "val/loss",
        pattern=r"^[^/\s]+/\S+$",
        description="Metric ('<split>/<name>' as logged, e.g. 'synthetic/shape/acc1') choosing the kept best checkpoint.",
    )
    best_mode: Literal["min", "max"] | None = Field(
        None, description="Whether best_by is best low or high (default: min for a loss, else max)."
    )
    distributed: DistributedSettings = Field(default_factory=DistributedSettings)
    mesh: MeshSettings = Field(default_factory=MeshSettings)

    @model_validator(mode="after")
    def _evaluator_names_unique(self) -> TrainConfig:
        seen: set[str] = set()
        for i, evaluator in enumerate(self.evaluators):
            split = evaluator.split
            if split in RESERVED_SPLITS:
                raise ValueError(
                    f"evaluators[{i}]: the name {split!r} is the trainer's own: give it another `name`"
                )
            if split in seen:
                raise ValueError(
                    f"evaluators[{i}]: a second evaluator named {split!r}: give each a distinct `name`"
                )
            seen.add(split)
        return self

    @model_validator(mode="after")
    def _micro_batch_divides(self) -> TrainConfig:
        if self.micro_batch_size is not None and self.batch_size % self.micro_batch_size:
            raise ValueError(
                f"train.micro_batch_size {self.micro_batch_size} does not divide train.batch_size "
                f"{self.batch_size}: use a divisor of it"
            )
        return self
