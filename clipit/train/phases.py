"""Phases are data: turn `[[train.phases]]` into concrete plans, checking them before any compute.

A plan fixes how many steps a phase runs, which parameters it trains (regexes over '/'-joined paths),
whether each tower is frozen (then it runs deterministically: no dropout) and whether the frozen
towers' outputs are cached.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from clipit.config.data import LoaderSettings
from clipit.config.train import OptimizerSettings, PhaseConfig, TrainConfig
from clipit.errors import ConfigError
from clipit.train.model_state import select

TOWERS = {"vision": "vision_model/", "text": "text_model/"}
LOGIT_SCALE = "logit_scale"


@dataclass(frozen=True)
class PhasePlan:
    index: int
    name: str
    steps: int
    trainable: frozenset[str]
    lr: float
    warmup_steps: int
    end_lr: float
    optimizer: OptimizerSettings
    reset_optimizer: bool
    cache_frozen: bool
    loader: LoaderSettings
    vision_frozen: bool
    text_frozen: bool


def phase_steps(phase: PhaseConfig, train_rows: int, batch_size: int) -> int:
    if phase.steps is not None:
        return phase.steps
    return max(1, math.ceil(phase.epochs * train_rows / batch_size))


def plan_phases(
    train: TrainConfig, loader: LoaderSettings, param_names: list[str], train_rows: int
) -> list[PhasePlan]:
    """Validate every phase against the model's parameter names and return the plans."""
    if not train.phases:
        raise ConfigError("train.phases is empty", "add at least one [[train.phases]] table")
    learn_scale = train.learn_logit_scale and train.fixed_logit_scale is None
    plans = []
    for i, phase in enumerate(train.phases):
        where = f"train.phases[{i}] ('{phase.name}')"
        matches = select(param_names, phase.trainable)
        for pattern, names in matches.items():
            if not names:
                raise ConfigError(
                    f"{where}: trainable pattern {pattern!r} matches no parameter",
                    "patterns are regexes searched in paths such as 'visual_projection/kernel', "
                    "'text_model/layers/0/...'; see `clipit train --list-params`",
                )
        trainable = set().union(*matches.values())
        if not learn_scale:
            trainable.discard(LOGIT_SCALE)
        if not trainable:
            raise ConfigError(
                f"{where}: nothing left to train", "the logit scale is fixed; train other params"
            )
        frozen = {tower: not any(n.startswith(prefix) for n in trainable) for tower, prefix in TOWERS.items()}
        settings = loader if phase.augment is None else loader.model_copy(update={"augment": phase.augment})
        if phase.cache_frozen and settings.augment:
            raise ConfigError(
                f"{where}: cache_frozen needs augmentation off (cached outputs would freeze one crop)",
                "set augment = false in this phase or cache_frozen = false",
            )
        if phase.cache_frozen and not all(frozen.values()):
            raise ConfigError(
                f"{where}: cache_frozen needs both towers frozen",
                "train only the heads ('projection', 'logit_scale') in this phase, or cache_frozen = false",
            )
        steps = phase_steps(phase, train_rows, train.batch_size)
        plans.append(
            PhasePlan(
                index=i,
                name=phase.name,
                steps=steps,
                trainable=frozenset(trainable),
                lr=phase.lr,
                warmup_steps=int(round(phase.warmup * steps)),
                end_lr=phase.lr * phase.end_lr_fraction,
                optimizer=phase.optimizer,
                reset_optimizer=phase.reset_optimizer,
                cache_frozen=phase.cache_frozen,
                loader=settings,
                vision_frozen=frozen["vision"],
                text_frozen=frozen["text"],
            )
        )
    return plans


def parameter_shapes(model_cfg) -> list[tuple[str, tuple[int, ...]]]:
    """Every parameter path the phase regexes can select, with its shape (`clipit train --list-params`)."""
    from flax import nnx

    from clipit.models.build import build_model
    from clipit.runs.params import path_name

    model, _ = build_model(model_cfg)
    return [
        (path_name(p), tuple(v.get_value().shape)) for p, v in nnx.to_flat_state(nnx.state(model, nnx.Param))
    ]
