"""Full fine-tuning: every parameter trains."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from torch import nn

from tuneforge.methods.base import MethodConfig, register
from tuneforge.methods.hf_folder import load_hf_folder, save_hf_folder
from tuneforge.models.backbones import Backbone


class FullConfig(MethodConfig):
    name: Literal["full"] = "full"


class Full:
    saves_base = True

    def __init__(self, config: FullConfig) -> None:
        self.config = config

    def apply(self, backbone: Backbone) -> nn.Module:
        for p in backbone.model.parameters():
            p.requires_grad_(True)
        return backbone.model

    def save(self, model: nn.Module, folder: Path) -> None:
        save_hf_folder(model, folder)

    def load(self, folder: Path, load_base: Callable[[], Backbone]) -> nn.Module:
        return load_hf_folder(folder)


register(FullConfig, Full, "all parameters train")
