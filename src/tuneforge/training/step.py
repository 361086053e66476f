"""One micro-batch: forward under autocast, backward, and the adversarial passes when they are on.

The loop calls this for every micro-batch; the tricks it composes are each a small function elsewhere
(``losses.py``: label smoothing, R-Drop; ``adversarial.py``: FGM, PGD). It sees only the model and its
trainable parameters, so every method works with every trick.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
from torch import nn

from tuneforge.config.schema import TrainLoopConfig
from tuneforge.training.adversarial import adversarial_backward
from tuneforge.training.distributed import local_pass
from tuneforge.training.losses import Loss


def micro_step(model: nn.Module, inputs: dict[str, torch.Tensor], indices: list[int], loss_fn: Loss, weight: float,
               cfg: TrainLoopConfig, autocast: Callable[[], AbstractContextManager]) -> torch.Tensor:
    """Accumulate ``weight`` x the gradient of the micro-batch's loss (plus the adversarial loss's) into the
    parameters; return the clean loss (detached)."""
    def loss_of() -> torch.Tensor:
        with autocast():
            return loss_fn(model, inputs, indices)

    if cfg.adversarial.method != "none":
        return adversarial_backward(model, loss_of, weight, cfg.adversarial, local=local_pass(model)).detach()
    loss = loss_of()
    (loss * weight).backward()
    return loss.detach()
