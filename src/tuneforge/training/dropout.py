"""Dropout overrides (``train.dropout``): set the backbone's dropout probabilities from the config.

Dropout is a regulariser whose right strength depends on the data size: with a few hundred examples more
of it can help, with prompt or LoRA tuning less. Hugging Face models fix it in ``config.json``
(``hidden_dropout_prob``, ``attention_probs_dropout_prob``, ``classifier_dropout``); this changes the built
modules in place, after the method is applied, so it works for every method and after the fast-dropout swap.

Which module is which, by name (BERT, RoBERTa, ELECTRA, Llama and models built like them):

- attention: dropout modules inside ``attention.self`` (BERT's attention reads ``self.dropout.p``), and the
  float ``attention_dropout`` attribute of Llama-style attention modules;
- classifier: the classifier's own ``dropout`` (BERT: ``model.dropout``; RoBERTa: ``classifier.dropout``);
- hidden: every other dropout module (embeddings, attention output, feed-forward output).

A method's own dropout (LoRA's ``lora_dropout``, the prefix encoder's) is left alone: ``method.dropout`` sets it.
"""

from __future__ import annotations

from torch import nn

from tuneforge.config.regularization import DropoutConfig
from tuneforge.training.fast_dropout import FastDropout

_DROPOUTS = (nn.Dropout, FastDropout)
_METHOD_PARTS = ("lora", "prefix", "prompt", "adapter")  # module names of methods' own layers


def _backbone_dropout(name: str) -> bool:
    parts = name.split(".")
    return parts[-1] == "dropout" and not any(p.startswith(_METHOD_PARTS) for p in parts)


def _kind(name: str) -> str:
    parts = name.split(".")
    if "self" in parts and any("attention" in p for p in parts):
        return "attention"
    if parts[-2:] == ["classifier", "dropout"] or not any(p in ("embeddings", "encoder", "layer", "layers")
                                                          for p in parts):
        return "classifier"  # a dropout outside the encoder stack belongs to the head
    return "hidden"


def set_dropout(model: nn.Module, cfg: DropoutConfig) -> dict[str, int]:
    """Apply the non-null probabilities of ``cfg``; returns how many modules of each kind changed."""
    wanted = {"hidden": cfg.hidden, "attention": cfg.attention, "classifier": cfg.classifier}
    changed = {kind: 0 for kind in wanted}
    if all(p is None for p in wanted.values()):
        return changed
    for name, module in model.named_modules():
        if isinstance(module, _DROPOUTS) and _backbone_dropout(name):
            kind = _kind(name)
            if wanted[kind] is not None:
                module.p = wanted[kind]
                changed[kind] += 1
        elif isinstance(getattr(module, "attention_dropout", None), float) and cfg.attention is not None:
            module.attention_dropout = cfg.attention  # Llama-style attention passes this float to its kernel
            changed["attention"] += 1
    return changed
