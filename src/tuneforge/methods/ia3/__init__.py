"""(IA)^3 (Liu et al., 2022, "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than
In-Context Learning") through peft.

Learned vectors rescale the attention keys and values and the feed-forward's inner activation:

    softmax(Q (l_k * K)^T / sqrt(d_k)) (l_v * V),        (l_ff * f(W_1 x)) W_2

with l_k, l_v in R^{d_k}, l_ff in R^{d_ff}, all initialised to ones (the pretrained model exactly).
That is one vector per targeted layer, the fewest trainable parameters of the methods here. For
feed-forward modules peft scales the layer's input (l_ff * x) W, otherwise its output l * (W x).
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


class IA3Config(MethodConfig):
    name: Literal["ia3"] = "ia3"
    recommended_learning_rate: ClassVar[float] = 1e-2
    target_modules: list[str] | None = Field(
        None, description="Names of the linear layers to rescale; default per architecture from peft "
                          "(key, value, output.dense for BERT; k_proj, v_proj, down_proj for Llama).")
    feedforward_modules: list[str] | None = Field(
        None, description="Those of target_modules whose input (not output) is rescaled: the feed-forward "
                          "output projections; default per architecture (output.dense, down_proj).")


def _model_type(model: nn.Module) -> str | None:
    return getattr(getattr(model, "config", None), "model_type", None)


def default_targets(model: nn.Module) -> list[str]:
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as TARGETS

    if _model_type(model) not in TARGETS:
        raise TuneforgeError(f"(IA)^3 has no default target modules for model type {_model_type(model)!r}. Set "
                             "method.target_modules (e.g. [k_proj, v_proj, down_proj]) and "
                             "method.feedforward_modules (e.g. [down_proj]).")
    return list(TARGETS[_model_type(model)])


def default_feedforward(model: nn.Module, targets: list[str]) -> list[str]:
    """peft's feed-forward modules for this model type, among ``targets`` (none for unknown types)."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING as FEEDFORWARD

    return [m for m in FEEDFORWARD.get(_model_type(model), []) if m in targets]


class IA3(PeftMethod):
    merges = True
    config: IA3Config

    def apply(self, backbone: Backbone) -> nn.Module:
        import peft

        model = backbone.model
        targets = self.config.target_modules or default_targets(model)
        feedforward = self.config.feedforward_modules
        if feedforward is None:
            feedforward = default_feedforward(model, targets)
        check_target_modules(model, targets)
        outside = sorted(set(feedforward) - set(targets))
        if outside:
            raise TuneforgeError(f"method.feedforward_modules: {outside} are not in method.target_modules "
                                 f"{targets}; feed-forward modules must be a subset of the targets.")
        peft_config = peft.IA3Config(task_type=peft_task_type(model), target_modules=targets,
                                     feedforward_modules=feedforward,
                                     modules_to_save=head_modules(model, backbone.new_parameters))
        return peft.get_peft_model(model, peft_config)


register(IA3Config, IA3, "learned rescaling of keys, values and feed-forward activations, through peft "
                         "(Liu et al., 2022)")
