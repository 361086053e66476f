"""What the methods built on peft share (lora, adalora, ia3, prompt, ptuning): saving and loading peft
adapter folders, switching the method off, and merging it into the base weights."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from torch import nn

from tuneforge.methods.base import MethodBase
from tuneforge.models.backbones import Backbone


def save_peft_folder(model: nn.Module, folder: Path) -> None:
    """adapter_config.json + adapter_model.safetensors (the method's weights and the head's copies)."""
    model.save_pretrained(folder, safe_serialization=True)


def load_peft_folder(folder: Path, load_base: Callable[[], Backbone]) -> nn.Module:
    import peft

    return peft.PeftModel.from_pretrained(load_base().model, folder)


@contextmanager
def peft_disabled(model: nn.Module) -> Iterator[None]:
    """The base model's computation, its original head included.

    peft's ``disable_adapter`` switches off the adapter layers, but for prompt learning (prompt tuning,
    P-tuning) it leaves the trained copy of the head (``modules_to_save``) in use, and on sequence
    classifiers it fails (peft 0.21 restores a ``prepare_inputs_for_generation`` they do not have). So
    for prompt learning we bypass the virtual tokens ourselves (the base model's own forward), and for
    every method we switch the head copies off too, so all methods mean the same by "disabled". peft
    also resets ``requires_grad`` when it switches back: we put back what the caller had.
    """
    from peft.utils.other import AuxiliaryTrainingWrapper

    grads = {name: p.requires_grad for name, p in model.named_parameters()}
    wrappers = [m for m in model.modules() if isinstance(m, AuxiliaryTrainingWrapper)]
    was_off = [m._disable_adapters for m in wrappers]
    prompt_learning = model.peft_config[model.active_adapter].is_prompt_learning
    try:
        if prompt_learning:
            model.forward = model.base_model.forward  # an instance attribute, shadowing PeftModel.forward
            for m in wrappers:
                m.enable_adapters(False)
            yield
        else:
            with model.disable_adapter():
                for m in wrappers:  # (peft leaves them as they are)
                    m.enable_adapters(False)
                yield
    finally:
        if prompt_learning and "forward" in vars(model):
            del model.forward
        for m, off in zip(wrappers, was_off):
            m.enable_adapters(not off)
        for name, p in model.named_parameters():
            p.requires_grad_(grads[name])


class PeftMethod(MethodBase):
    """Base of methods whose ``apply`` returns a ``peft.PeftModel``."""

    def save(self, model: nn.Module, folder: Path) -> None:
        save_peft_folder(model, folder)

    def load(self, folder: Path, load_base: Callable[[], Backbone]) -> nn.Module:
        return load_peft_folder(folder, load_base)

    def disabled(self, model: nn.Module):
        return peft_disabled(model)

    def merge(self, model: nn.Module) -> nn.Module:
        if not self.merges:
            return super().merge(model)
        # merge_and_unload folds the updates into the weights and puts the trained head copies in place of
        # the originals. It changes ``model`` in place: merge a copy, so the caller's model keeps working.
        import copy

        return copy.deepcopy(model).merge_and_unload()
