"""The method interface and registry.

A method decides which parameters train and how the result is saved and loaded. Each lives in its
own folder (``methods/<name>/``) holding its config and its implementation, and registers itself
with one :func:`register` call; nothing central branches on the method's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from torch import nn

from tuneforge.config.base import StrictModel
from tuneforge.models.backbones import Backbone


class MethodConfig(StrictModel):
    """Base of method configs; subclasses fix ``name`` to a ``Literal`` (the discriminator)."""

    name: str


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
