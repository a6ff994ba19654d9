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
    distributed: DistributedSettings = Field(default_factory=DistributedSettings)

    @model_validator(mode="after")
    def _micro_batch_divides(self) -> TrainConfig:
        if self.micro_batch_size is not None and self.batch_size % self.micro_batch_size:
            raise ValueError(
                f"train.micro_batch_size {self.micro_batch_size} does not divide train.batch_size "
                f"{self.batch_size}: use a divisor of it"
            )
        return self
