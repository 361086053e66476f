"""Parameter selection shared by methods: the task head, biases, transformer layers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from tuneforge.errors import TuneforgeError


def head_parameter_names(model: nn.Module, new_parameters: set[str]) -> set[str]:
    """The task head: parameters outside the base model (``classifier``, ``score``), the pooler that
    feeds them, and anything freshly initialised. Every method trains these. A prompt-trained language
    model (prompting/pet.py) has none: its LM head, read at the verbalizer's words, is the classifier."""
    from tuneforge.tasks import task_of_model

    if getattr(model, "_tuneforge_prompt_classifier", False) or not task_of_model(model).new_head:
        return set()  # (a causal LM generating text: its LM head is pretrained, not a new head)
    prefix = getattr(model, "base_model_prefix", "")
    names = set()
    for name, _ in model.named_parameters():
        outside_base = bool(prefix) and not name.startswith(prefix + ".")
        if outside_base or name in new_parameters or ".pooler." in name:
            names.add(name)
    return names


def transformer_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The stack of transformer blocks: the longest ``ModuleList`` of identical blocks.

    Found by shape rather than by name so it works for BERT (``encoder.layer``), Llama
    (``model.layers``), GPT-2 (``transformer.h``) and others without a table per architecture.
    """
    best: tuple[str, nn.ModuleList] | None = None
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) > 0:
            kinds = {type(child) for child in module}
            if len(kinds) == 1 and (best is None or len(module) > len(best[1])):
                best = (name, module)
    if best is None:
        raise TuneforgeError(f"Could not find the transformer layers of {type(model).__name__}; "
                             "method freeze needs a model with a list of transformer blocks.")
    return best


def set_trainable(model: nn.Module, trainable: set[str]) -> None:
    for name, param in model.named_parameters():
        param.requires_grad_(name in trainable)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def peft_task_type(model: nn.Module):
    """peft's task type for the model's head (sequence or token classification): it picks the PeftModel
    class, which passes the labels and reads the logits the way that head needs."""
    import peft

    from tuneforge.tasks import task_of_model

    return getattr(peft.TaskType, task_of_model(model).peft_task_type)


def head_modules(model: nn.Module, new_parameters: set[str]) -> list[str]:
    """Module names that hold the head's parameters (trained and saved in full by peft)."""
    return sorted({name.rsplit(".", 1)[0] for name in head_parameter_names(model, new_parameters)})


def check_target_modules(model: nn.Module, targets: list[str]) -> None:
    """Every name in ``method.target_modules`` must end some module's name; else list the linear layers."""
    names = [n for n, _ in model.named_modules()]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)})
        raise TuneforgeError(f"method.target_modules: {missing} not found in {type(model).__name__}. "
                             f"Linear layers it has: {linear}.")


def snapshot(model: nn.Module, names: set[str]) -> dict[str, torch.Tensor]:
    """A copy of the named parameters' current values."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if n in names}


@contextmanager
def swapped_in(model: nn.Module, values: dict[str, torch.Tensor]) -> Iterator[None]:
    """Give the named parameters ``values`` inside the context; their own values come back on exit."""
    params = dict(model.named_parameters())
    saved = {n: params[n].detach().clone() for n in values}
    try:
        with torch.no_grad():
            for n, v in values.items():
                params[n].copy_(v)
        yield
    finally:
        with torch.no_grad():
            for n, v in saved.items():
                params[n].copy_(v)
