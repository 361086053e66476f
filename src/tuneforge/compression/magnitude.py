"""Unstructured magnitude pruning: zero the weights with the smallest |w| (L1), via torch.nn.utils.prune.

Pruned are the linear weights inside the transformer layers (attention and feed-forward matrices, ~2/3
of MiniLM's parameters); embeddings, norms, biases, the pooler and the classifier stay dense. ``global``
ranks all those weights together (layers that matter less lose more), ``layer`` gives every matrix the
same sparsity.

Honest limits: the result is stored dense (safetensors has no sparse format), so the file is as large as
before, and dense CPU kernels multiply zeros as fast as any other value, so inference is not faster. The
gain is the compressibility of the weights and a starting point for sparse kernels; head pruning
(:mod:`tuneforge.compression.heads`) is what makes a model smaller and faster.

While fine-tuning after pruning, torch's mask stays attached (``weight = weight_orig * mask`` on every
forward), so pruned weights stay zero; :func:`make_permanent` then folds the mask into ``weight``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn.utils import prune

from tuneforge.methods.params import transformer_layers


def prunable(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """(module, "weight") of every linear layer inside the transformer blocks."""
    _, layers = transformer_layers(model)
    return [(m, "weight") for m in layers.modules() if isinstance(m, nn.Linear)]


def magnitude_prune(model: nn.Module, sparsity: float, scope: Literal["global", "layer"] = "global") -> None:
    """Attach L1 masks zeroing ``sparsity`` of the prunable weights (globally or per matrix)."""
    targets = prunable(model)
    if scope == "global":
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=sparsity)
    else:
        for module, name in targets:
            prune.l1_unstructured(module, name, amount=sparsity)


def make_permanent(model: nn.Module) -> None:
    """Fold the masks into the weights and drop ``weight_orig`` and the hooks (a plain model again)."""
    for module in model.modules():
        if prune.is_pruned(module) and hasattr(module, "weight_mask"):
            prune.remove(module, "weight")


def sparsity(model: nn.Module) -> float:
    """The share of zeros among the prunable weights."""
    weights = [getattr(m, name) for m, name in prunable(model)]
    zeros = sum(int((w == 0).sum()) for w in weights)
    return zeros / max(1, sum(w.numel() for w in weights))


@torch.no_grad()
def nonzero_fraction(model: nn.Module) -> float:
    params = list(model.parameters())
    return sum(int(torch.count_nonzero(p)) for p in params) / max(1, sum(p.numel() for p in params))
