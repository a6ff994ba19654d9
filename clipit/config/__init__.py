"""One typed config tree, loaded from TOML. Each stage receives only its own section."""

from clipit.config.data import DataConfig
from clipit.config.embed import EmbedConfig
from clipit.config.eval import EvalConfig
from clipit.config.load import (
    DEFAULT_CONFIG_NAME,
    RESOLVED_CONFIG_NAME,
    load_config,
    parse_override,
    save_resolved,
    to_toml,
    validate_config,
)
from clipit.config.model import ModelConfig
from clipit.config.root import Config
from clipit.config.train import PhaseConfig, TrainConfig
from clipit.config.translate import TranslateConfig

__all__ = [
    "DEFAULT_CONFIG_NAME",
    "RESOLVED_CONFIG_NAME",
    "Config",
    "DataConfig",
    "EmbedConfig",
    "EvalConfig",
    "ModelConfig",
    "PhaseConfig",
    "TrainConfig",
    "TranslateConfig",
    "load_config",
    "parse_override",
    "save_resolved",
    "to_toml",
    "validate_config",
]
