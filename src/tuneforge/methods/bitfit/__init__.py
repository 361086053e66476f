"""BitFit (Ben Zaken et al., 2022, "BitFit: Simple Parameter-efficient Fine-tuning for
Transformer-based Masked Language-models"): only bias terms and the task head train."""

from __future__ import annotations

from typing import ClassVar, Literal


from tuneforge.methods.base import MethodConfig, register
from tuneforge.methods.hf_folder import HFFolderMethod
from tuneforge.methods.params import head_parameter_names
from tuneforge.models.backbones import Backbone


class BitFitConfig(MethodConfig):
    name: Literal["bitfit"] = "bitfit"
    recommended_learning_rate: ClassVar[float] = 3e-3


class BitFit(HFFolderMethod):
    config: BitFitConfig

    def trainable(self, backbone: Backbone) -> set[str]:
        model = backbone.model
        trainable = head_parameter_names(model, backbone.new_parameters)
        trainable |= {n for n, _ in model.named_parameters() if n.endswith(".bias")}
        return trainable


register(BitFitConfig, BitFit, "bias terms and the head train (Ben Zaken et al., 2022)")
