"""BitFit (Ben Zaken et al., 2022, "BitFit: Simple Parameter-efficient Fine-tuning for
Transformer-based Masked Language-models"): only bias terms and the task head train."""

from __future__ import annotations

import logging
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
        biases = {n for n, _ in model.named_parameters() if n.endswith(".bias")}
        if not biases - trainable:
            # Llama-style decoders have no bias terms: BitFit would be the head alone. Say so rather than fail,
            # so that comparisons across methods still run.
            logging.getLogger(__name__).warning(
                "method bitfit: %s has no bias terms outside the head, so only the head trains. Use lora or ia3 "
                "for this architecture.", type(model).__name__)
        return trainable | biases


register(BitFitConfig, BitFit, "bias terms and the head train (Ben Zaken et al., 2022)")
