"""Typed recipe configs, loaded from YAML with ``a.b=c`` overrides."""

from tuneforge.config.loading import dump_config, load_config
from tuneforge.config.schema import DataConfig, TrainConfig, TrainLoopConfig

__all__ = ["DataConfig", "TrainConfig", "TrainLoopConfig", "dump_config", "load_config"]
