"""Full fine-tuning: every parameter trains."""

from __future__ import annotations

from typing import ClassVar, Literal

from tuneforge.methods.base import MethodConfig, register
from tuneforge.methods.hf_folder import HFFolderMethod
from tuneforge.models.backbones import Backbone


class FullConfig(MethodConfig):
    name: Literal["full"] = "full"
    recommended_learning_rate: ClassVar[float] = 1e-4


class Full(HFFolderMethod):
    # Switching full fine-tuning off would need a second copy of every weight, kept just in case; load the
    # base model instead.
    removable = False

    def trainable(self, backbone: Backbone) -> set[str]:
        return {n for n, _ in backbone.model.named_parameters()}


register(FullConfig, Full, "all parameters train")
