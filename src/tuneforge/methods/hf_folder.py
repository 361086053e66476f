"""What full, freeze and bitfit share: they train some of the base model's own weights, so the result is
a whole Hugging Face model folder, already "merged"; switching the method off puts the pretrained values
of those weights back."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from tuneforge.errors import TuneforgeError
from tuneforge.methods.base import MethodBase
from tuneforge.methods.params import set_trainable, snapshot, swapped_in
from tuneforge.models.backbones import Backbone


def save_hf_folder(model: nn.Module, folder: Path) -> None:
    model.save_pretrained(folder, safe_serialization=True)


def load_hf_folder(folder: Path) -> nn.Module:
    import transformers

    from tuneforge.models.pooling import use_last_token_pooling
    from tuneforge.tasks import TASKS

    config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    if "pruned_heads" in config:
        # Heads removed by `tuneforge prune`: our own class rebuilds the smaller layers, with no need to trust
        # the copy of its code saved in the folder (compression/pruned_bert.py).
        from tuneforge.compression.pruned_bert import PrunedBertForSequenceClassification

        return PrunedBertForSequenceClassification.from_pretrained(folder, dtype=torch.float32)
    from tuneforge.prompting.pet import is_prompt_folder, load_prompt_folder

    if is_prompt_folder(folder):  # trained through a prompt: the language model with its verbalizer
        return load_prompt_folder(folder)
    # The head class the folder was saved with (config.json "architectures"): sequence or token classification.
    architectures = config.get("architectures") or []
    token = any(a.endswith("ForTokenClassification") for a in architectures)
    causal = any(a.endswith("ForCausalLM") for a in architectures)  # generation (PET folders returned above)
    auto_class = TASKS["token-classification" if token else "generation" if causal else "text-classification"
                       ].auto_class
    model = getattr(transformers, auto_class).from_pretrained(folder, dtype=torch.float32)
    use_last_token_pooling(model)  # decoders: the pooling load_backbone installs (hooks are not saved)
    return model


class HFFolderMethod(MethodBase):
    """Base of methods that train a subset of the base weights in place (named by :meth:`trainable`)."""

    saves_base = True
    merges = True  # nothing to fold in: the trained model is a plain transformers model

    def __init__(self, config) -> None:
        super().__init__(config)
        self._originals: dict[str, torch.Tensor] | None = None  # the pretrained values of what trains
        self._load_base: Callable[[], Backbone] | None = None

    def trainable(self, backbone: Backbone) -> set[str]:
        """Names of the parameters of ``backbone.model`` this method trains (the head included)."""
        raise NotImplementedError

    def apply(self, backbone: Backbone) -> nn.Module:
        names = self.trainable(backbone)
        set_trainable(backbone.model, names)
        if self.removable:  # a copy of what will train, for disabled(); full (everything) keeps none
            self._originals = snapshot(backbone.model, names)
        return backbone.model

    def save(self, model: nn.Module, folder: Path) -> None:
        save_hf_folder(model, folder)

    def load(self, folder: Path, load_base: Callable[[], Backbone]) -> nn.Module:
        self._originals, self._load_base = None, load_base  # the pretrained values are read when needed
        return load_hf_folder(folder)

    def merge(self, model: nn.Module) -> nn.Module:
        return model

    def disabled(self, model: nn.Module):
        if not self.removable:
            return super().disabled(model)
        if self._originals is None:
            if self._load_base is None:
                raise TuneforgeError(f"method {self.config.name}: disabled() needs the model that apply() or "
                                     "load() returned.")
            base = self._load_base()
            self._originals = snapshot(base.model, self.trainable(base))
        return swapped_in(model, self._originals)
