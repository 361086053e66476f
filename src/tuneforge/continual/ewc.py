"""Elastic weight consolidation: a quadratic pull towards run A's weights, stronger where A's data cares.

Kirkpatrick et al. 2017, "Overcoming catastrophic forgetting in neural networks" (PNAS 114(13)). Training on
task B minimises

    L(theta) = L_B(theta) + lambda / 2 * sum_i F_i (theta_i - theta*_i)^2

where theta* are the weights after task A and F is the diagonal of the Fisher information of A's data at
theta*, here the empirical Fisher: the mean over N examples (x, y) of A's training split of the squared
gradient of the log-likelihood,

    F_i = 1/N * sum_n (d log p(y_n | x_n; theta*) / d theta_i)^2

(one backward pass per example: the mean of squared per-example gradients, not the square of the mean).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn

from tuneforge.training.batching import Encoded, collate


def fisher_diagonal(model: nn.Module, data: Encoded, *, pad_id: int, padding_side: str = "right",
                    device: torch.device | str = "cpu",
                    autocast: Callable[[], AbstractContextManager] = nullcontext) -> dict[str, torch.Tensor]:
    """The empirical diagonal Fisher of ``data`` at ``model``'s current weights, per trainable parameter
    (fp32, on ``device``). Dropout is off (eval mode) so that F is a property of theta*, not of a mask."""
    was_training = model.training
    model.eval()
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    fisher = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in params.items()}
    try:
        for index in range(len(data)):
            inputs = {k: v.to(device) for k, v in collate(data, [index], pad_id, padding_side).items()}
            with autocast():
                logits = model(**{k: v for k, v in inputs.items() if k != "labels"}).logits  # (1, K)
            log_likelihood = torch.log_softmax(logits.float(), -1)[0, inputs["labels"][0]]
            grads = torch.autograd.grad(log_likelihood, list(params.values()), allow_unused=True)
            for (name, _), grad in zip(params.items(), grads):
                if grad is not None:  # e.g. the unused token-type rows get no gradient: F = 0 there
                    fisher[name] += grad.float() ** 2
    finally:
        model.train(was_training)
    return {name: f / max(len(data), 1) for name, f in fisher.items()}


def ewc_penalty(model: nn.Module, anchor: dict[str, torch.Tensor], fisher: dict[str, torch.Tensor],
                strength: float) -> torch.Tensor:
    """lambda / 2 * sum_i F_i (theta_i - theta*_i)^2 over the parameters in ``fisher`` (a scalar, fp32)."""
    total = torch.zeros((), dtype=torch.float32, device=next(iter(anchor.values())).device)
    for name, param in model.named_parameters():
        if name in fisher:
            total = total + (fisher[name] * (param.float() - anchor[name]) ** 2).sum()
    return strength / 2 * total


class EWC:
    """The penalty the training loop adds to every step's loss (``fit(..., penalty=ewc)``): A's weights and
    Fisher, captured once before B trains."""

    def __init__(self, model: nn.Module, fisher: dict[str, torch.Tensor], strength: float) -> None:
        self.fisher = fisher
        self.anchor = {name: p.detach().float().clone() for name, p in model.named_parameters() if name in fisher}
        self.strength = strength

    def __call__(self, model: nn.Module) -> torch.Tensor:
        return ewc_penalty(model, self.anchor, self.fisher, self.strength)

    def describe(self) -> dict[str, float]:
        """Size of the Fisher, for continual.json: its mean and max over all its entries."""
        flat = torch.cat([f.flatten() for f in self.fisher.values()])
        return {"strength": self.strength, "fisher_mean": float(flat.mean()), "fisher_max": float(flat.max()),
                "parameters": int(flat.numel())}
