"""Exponential moving average of the trainable weights (Polyak & Juditsky 1992; as used by Tarvainen &
Valpola 2017 and TensorFlow's ``ExponentialMovingAverage``):

    shadow <- d_t * shadow + (1 - d_t) * weight,   d_t = min(decay, (1 + t) / (10 + t))   after step t

The warm-up of d_t (TensorFlow's ``num_updates``) matters for short runs: few-shot training takes tens of
steps, and a fixed 0.999 would keep the average near the pretrained weights. When EMA is on, the averaged
weights are what the loop evaluates, what early stopping keeps, and what the run saves; the raw weights only
train. The shadow is checkpointed, so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

PREFIX = "ema/"  # key prefix of the shadow weights in a checkpoint's extra state


class EMA:
    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {n: p.detach().float().clone() for n, p in model.named_parameters() if p.requires_grad}

    def _params(self, model: nn.Module) -> dict[str, nn.Parameter]:
        return {n: p for n, p in model.named_parameters() if n in self.shadow}

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """After optimizer step ``step`` (counting from 1)."""
        d = min(self.decay, (1 + step) / (10 + step))
        for name, param in self._params(model).items():
            self.shadow[name].lerp_(param.detach().float(), 1 - d)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        for name, param in self._params(model).items():
            param.copy_(self.shadow[name].to(param.dtype))

    @contextmanager
    def applied(self, model: nn.Module) -> Iterator[None]:
        """The averaged weights in the model for the duration (evaluation), the raw ones back afterwards."""
        raw = {n: p.detach().clone() for n, p in self._params(model).items()}
        self.copy_to(model)
        try:
            yield
        finally:
            with torch.no_grad():
                for name, param in self._params(model).items():
                    param.copy_(raw[name])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {PREFIX + n: v.detach().cpu().contiguous() for n, v in self.shadow.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = [n for n in self.shadow if PREFIX + n not in state]
        if missing:
            raise RuntimeError(f"the checkpoint has no EMA weights for {missing[:3]}: was it written with "
                               "train.ema_decay off? Resume with the same train.ema_decay.")
        for name, value in self.shadow.items():
            value.copy_(state[PREFIX + name])
