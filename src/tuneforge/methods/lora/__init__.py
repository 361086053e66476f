"""LoRA (Hu et al., 2021, "LoRA: Low-Rank Adaptation of Large Language Models") through peft.

Each targeted linear layer W gets a trainable low-rank update: h = W x + (alpha / r) * B A x, with
A (r x d_in) random, B (d_out x r) zero, so training starts from the pretrained model exactly.
The head trains in full (peft ``modules_to_save``). The run folder holds a peft adapter folder.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field
from torch import nn

from tuneforge.errors import TuneforgeError
from tuneforge.methods.base import MethodConfig, register
from tuneforge.methods.params import check_target_modules, head_modules, peft_task_type
from tuneforge.methods.peft_folder import PeftMethod
from tuneforge.models.backbones import Backbone


class LoraConfig(MethodConfig):
    name: Literal["lora"] = "lora"
    recommended_learning_rate: ClassVar[float] = 2e-3
    r: int = Field(8, ge=1, description="Rank of the update B A.")
    alpha: float = Field(16, gt=0, description="Scale: the update is multiplied by alpha / r.")
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout on the LoRA branch input.")
    target_modules: list[str] | None = Field(
        None, description="Names of the linear layers to adapt; default per architecture "
                          "(query/value for BERT, q_proj/v_proj for Llama).")


def default_targets(model: nn.Module) -> list[str]:
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as TARGETS

    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in TARGETS:
        raise TuneforgeError(f"LoRA has no default target modules for model type {model_type!r}. Set "
                             "method.target_modules to the names of its attention projections, e.g. "
                             "[q_proj, v_proj].")
    return list(TARGETS[model_type])


class Lora(PeftMethod):
    merges = True
    config: LoraConfig

    def apply(self, backbone: Backbone) -> nn.Module:
        import peft

        model = backbone.model
        targets = self.config.target_modules or default_targets(model)
        check_target_modules(model, targets)
        peft_config = peft.LoraConfig(
            task_type=peft_task_type(model), r=self.config.r, lora_alpha=self.config.alpha,
            lora_dropout=self.config.dropout, target_modules=targets,
            modules_to_save=head_modules(model, backbone.new_parameters))
        return peft.get_peft_model(model, peft_config)


register(LoraConfig, Lora, "low-rank updates of attention projections, through peft (Hu et al., 2021)")
