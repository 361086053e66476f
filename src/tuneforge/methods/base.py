"""The method interface and registry.

A method decides which parameters train and how the result is saved and loaded. Each lives in its
own folder (``methods/<name>/``) holding its config and its implementation, and registers itself
with one :func:`register` call; nothing central branches on the method's name.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

import torch
from torch import nn

from tuneforge.config.base import StrictModel
from tuneforge.errors import TuneforgeError
from tuneforge.models.backbones import Backbone


class MethodConfig(StrictModel):
    """Base of method configs; subclasses fix ``name`` to a ``Literal`` (the discriminator)."""

    name: str

    #: A peak AdamW learning rate that works for this method on small encoders over a few epochs (where
    #: ``tuneforge compare`` starts; see docs/METHODS.md for how each was chosen). Not a config field.
    recommended_learning_rate: ClassVar[float] = 1e-4


class Method(Protocol):
    """What every fine-tuning method implements."""

    config: MethodConfig

    #: True when ``save`` writes only the method's own weights and ``load`` rebuilds the frozen base
    #: from the backbone: the frozen weights may then be held in bf16 while training (a speed-up).
    saves_base: bool

    def apply(self, backbone: Backbone) -> nn.Module:
        """Prepare ``backbone.model`` for training: set ``requires_grad``, wrap or inject modules."""
        ...

    def save(self, model: nn.Module, folder: Path) -> None:
        """Write the trained weights to ``folder`` (safetensors) in a format other tools read."""
        ...

    def load(self, folder: Path, load_base: Callable[[], Backbone]) -> nn.Module:
        """Load what ``save`` wrote; ``load_base`` gives the base backbone where one is needed."""
        ...

    #: True when :meth:`merge` folds the method into the base weights (lora, adalora, ia3, bitfit).
    merges: bool

    #: True when :meth:`disabled` can give back the base model's computation (every method but full).
    removable: bool

    def plan(self, total_steps: int) -> None:
        """Told, before ``apply``, how many optimizer steps training will take (AdaLoRA's budget)."""
        ...

    def after_step(self, model: nn.Module, step: int) -> None:
        """Called after each optimizer step (``step`` counts from 1), before the gradients are cleared."""
        ...

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Training state the method keeps outside the model (AdaLoRA's importance scores), checkpointed
        with the run so that ``--resume`` continues exactly; empty for most methods."""
        ...

    def load_state_dict(self, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`state_dict` returned, on resume."""
        ...

    def merge(self, model: nn.Module) -> nn.Module:
        """A plain transformers model computing what ``model`` computes (the method folded in)."""
        ...

    def disabled(self, model: nn.Module) -> AbstractContextManager[None]:
        """Inside this context ``model`` computes what the base model did before ``apply`` (its original
        head included); on exit the method is back, bit for bit."""
        ...


class MethodBase:
    """Defaults for the optional parts of :class:`Method`; every method folder subclasses it."""

    saves_base = False
    merges = False
    removable = True

    def __init__(self, config: MethodConfig) -> None:
        self.config = config

    def plan(self, total_steps: int) -> None:
        pass

    def after_step(self, model: nn.Module, step: int) -> None:
        pass

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
        if state:
            raise RuntimeError(f"method {self.config.name} keeps no training state, but the checkpoint has some")

    def merge(self, model: nn.Module) -> nn.Module:
        merging = ", ".join(sorted(n for n, spec in _REGISTRY.items() if getattr(spec.factory, "merges", False)))
        raise TuneforgeError(f"method {self.config.name} does not merge into the base weights: it adds modules or "
                             "virtual tokens that a plain transformers model does not have. Methods that merge: "
                             f"{merging}. Export it unmerged instead (tuneforge export RUN_DIR OUT --no-merge, or "
                             "--format onnx, whose graph holds the method), or use the run folder itself "
                             "(tuneforge.load / tuneforge predict).")

    def disabled(self, model: nn.Module) -> AbstractContextManager[None]:
        raise TuneforgeError(f"method {self.config.name} changes the base weights themselves, so it cannot be "
                             "switched off; load the base model instead.")


@dataclass(frozen=True)
class MethodSpec:
    config: type[MethodConfig]
    factory: Callable[[MethodConfig], Method]
    summary: str


_REGISTRY: dict[str, MethodSpec] = {}


def register(config: type[MethodConfig], factory: Callable[[MethodConfig], Method], summary: str) -> None:
    """Make a method available as ``method: {name: ...}`` in every training config."""
    name = config.model_fields["name"].default
    if not isinstance(name, str):
        raise TypeError(f"{config.__name__}.name needs a default (the method's name)")
    _REGISTRY[name] = MethodSpec(config=config, factory=factory, summary=summary)


def registry() -> dict[str, MethodSpec]:
    return dict(_REGISTRY)


def build_method(config: MethodConfig) -> Method:
    return _REGISTRY[config.name].factory(config)
