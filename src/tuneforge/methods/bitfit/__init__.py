"""BitFit (Ben Zaken et al., 2022, "BitFit: Simple Parameter-efficient Fine-tuning for
Transformer-based Masked Language-models"): only bias terms and the task head train."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from torch import nn

from tuneforge.methods.base import MethodConfig, register
from tuneforge.methods.hf_folder import load_hf_folder, save_hf_folder
from tuneforge.methods.params import head_parameter_names, set_trainable
from tuneforge.models.backbones import Backbone


class BitFitConfig(MethodConfig):
    name: Literal["bitfit"] = "bitfit"


class BitFit:
    saves_base = True

    def __init__(self, config: BitFitConfig) -> None:
        self.config = config

    def apply(self, backbone: Backbone) -> nn.Module:
        model = backbone.model
        trainable = head_parameter_names(model, backbone.new_parameters)
        trainable |= {n for n, _ in model.named_parameters() if n.endswith(".bias")}
        set_trainable(model, trainable)
        return model

    def save(self, model: nn.Module, folder: Path) -> None:
        save_hf_folder(model, folder)

    def load(self, folder: Path, load_base: Callable[[], Backbone]) -> nn.Module:
        return load_hf_folder(folder)


register(BitFitConfig, BitFit, "bias terms and the head train (Ben Zaken et al., 2022)")
