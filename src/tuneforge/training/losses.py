"""Training losses of a classifier micro-batch: the model's own cross-entropy, label smoothing, R-Drop.

R-Drop (Liang et al. 2021, "R-Drop: Regularized Dropout for Neural Networks"): the batch goes through the
model twice with different dropout masks, giving class distributions P1 and P2, and

    loss = (CE(P1, y) + CE(P2, y)) / 2 + alpha * (KL(P1 || P2) + KL(P2 || P1)) / 2

(the CE terms averaged rather than summed, as in the authors' classification code, so the learning rate
means what it means without R-Drop). Both passes run as one forward of the batch stacked twice: dropout
draws an independent mask for every element (``nn.Dropout``, :mod:`tuneforge.training.fast_dropout` and the
training attention alike), so the two copies see different masks, and one pass of 2B examples is cheaper on
a CPU than two of B. Test: tests/training/test_regularization.py checks the two halves really differ.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tuneforge.config.schema import TrainLoopConfig

# (model, inputs incl. labels, example indices) -> scalar loss; the loop's LossFn
Loss = Callable[[nn.Module, dict[str, torch.Tensor], list[int]], torch.Tensor]


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy in fp32 (logits may be bf16 under autocast). ``smoothing`` s: the target is
    (1 - s) one-hot + s / K uniform (Szegedy et al. 2016, "Rethinking the Inception Architecture")."""
    return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), labels.view(-1), label_smoothing=smoothing)


def symmetric_kl(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """(KL(P_a || P_b) + KL(P_b || P_a)) / 2, averaged over the batch."""
    log_a, log_b = F.log_softmax(logits_a.float(), -1), F.log_softmax(logits_b.float(), -1)
    kl_ab = F.kl_div(log_b, log_a, log_target=True, reduction="batchmean")  # KL(P_a || P_b)
    kl_ba = F.kl_div(log_a, log_b, log_target=True, reduction="batchmean")
    return (kl_ab + kl_ba) / 2


def model_loss(out: Any, labels: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """The model's own loss (its cross-entropy plus any term its method adds, e.g. AdaLoRA's orthogonality
    penalty, which peft adds only when the labels go through the model), with the cross-entropy's target
    smoothed by ``smoothing``: the plain cross-entropy is swapped for the smoothed one."""
    if not smoothing:
        return out.loss
    return out.loss - cross_entropy(out.logits, labels) + cross_entropy(out.logits, labels, smoothing)


def rdrop_loss(model: nn.Module, inputs: dict[str, torch.Tensor], alpha: float, smoothing: float = 0.0
               ) -> torch.Tensor:
    doubled = {k: torch.cat([v, v]) for k, v in inputs.items()}  # (2B, T); labels (2B,)
    out = model(**doubled)
    first, second = out.logits.chunk(2)  # (B, K) each, different dropout masks
    # The mean cross-entropy over the 2B rows is (CE(P1, y) + CE(P2, y)) / 2.
    return model_loss(out, doubled["labels"], smoothing) + alpha * symmetric_kl(first, second)


def build_loss(cfg: TrainLoopConfig, loss_fn: Loss | None) -> Loss:
    """The micro-batch loss the loop minimises: a recipe's own ``loss_fn`` (distillation), R-Drop, label-smoothed
    cross-entropy, or the model's own loss."""
    if loss_fn is not None:
        if cfg.rdrop_alpha or cfg.label_smoothing:
            from tuneforge.errors import TuneforgeError

            raise TuneforgeError("train.rdrop_alpha and train.label_smoothing apply to the cross-entropy of "
                                 "`tuneforge train`; this recipe trains with its own loss (distillation). Set them "
                                 "to 0.")
        return loss_fn
    if cfg.rdrop_alpha:
        return lambda model, inputs, _: rdrop_loss(model, inputs, cfg.rdrop_alpha, cfg.label_smoothing)
    if cfg.label_smoothing:
        return lambda model, inputs, _: model_loss(model(**inputs), inputs["labels"], cfg.label_smoothing)
    return lambda model, inputs, _: model(**inputs).loss
