"""Top-layers fine-tuning: the top ``layers`` transformer blocks and the head train, the rest is frozen."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from tuneforge.errors import TuneforgeError
from tuneforge.methods.base import MethodConfig, register
from tuneforge.methods.hf_folder import HFFolderMethod
from tuneforge.methods.params import head_parameter_names, transformer_layers
from tuneforge.models.backbones import Backbone


class FreezeConfig(MethodConfig):
    name: Literal["freeze"] = "freeze"
    recommended_learning_rate: ClassVar[float] = 3e-4
    layers: int = Field(2, ge=0, description="How many of the top transformer layers train (0: head only).")


class Freeze(HFFolderMethod):
    config: FreezeConfig

    def trainable(self, backbone: Backbone) -> set[str]:
        model = backbone.model
        stack_name, stack = transformer_layers(model)
        k = self.config.layers
        if k > len(stack):
            raise TuneforgeError(f"method.layers = {k}, but the model has only {len(stack)} transformer "
                                 f"layers. Use a value from 0 to {len(stack)}.")
        trainable = head_parameter_names(model, backbone.new_parameters)
        for index in range(len(stack) - k, len(stack)):
            trainable |= {f"{stack_name}.{index}.{n}" for n, _ in stack[index].named_parameters()}
        return trainable


register(FreezeConfig, Freeze, "top k transformer layers and the head train")
