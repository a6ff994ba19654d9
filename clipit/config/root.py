"""The config tree: one strict, immutable model with a section per stage."""

from __future__ import annotations

from pydantic import Field

from clipit.config.base import Section
from clipit.config.data import DataConfig
from clipit.config.embed import EmbedConfig
from clipit.config.eval import EvalConfig
from clipit.config.model import ModelConfig
from clipit.config.train import TrainConfig
from clipit.config.translate import TranslateConfig


class Config(Section):
    data: DataConfig = Field(default_factory=DataConfig)
    translate: TranslateConfig = Field(default_factory=TranslateConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    embed: EmbedConfig = Field(default_factory=EmbedConfig)
