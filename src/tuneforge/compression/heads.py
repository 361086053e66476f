"""Attention-head pruning by importance (Michel, Levy and Neubig, 2019, "Are Sixteen Heads Really Better
than One?").

Each head h of a layer gets a gate xi_h = 1 multiplying its output before the output projection. A head's
importance is the expected size of the loss gradient with respect to its gate,

    I_h = E_x | dL(x) / d xi_h |

(a first-order estimate of how much the loss changes when the head is removed), summed over training
batches and normalised by its layer's L2 norm so layers are comparable. The least important fraction of
all heads is then removed physically (rows of Q, K, V and columns of the output projection:
:mod:`tuneforge.compression.pruned_bert`), which makes the model smaller and faster, not just masked.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from tuneforge.compression.pruned_bert import PrunedBertForSequenceClassification, apply_pruned_heads
from tuneforge.errors import TuneforgeError
from tuneforge.training.batching import Encoded, batch_order, collate


def bert_layers(model: nn.Module) -> nn.ModuleList:
    """The encoder layers of a ``BertForSequenceClassification``; other architectures are refused."""
    if type(model).__name__ not in ("BertForSequenceClassification", PrunedBertForSequenceClassification.__name__):
        raise TuneforgeError(f"--heads prunes BERT-style classifiers (BertForSequenceClassification, e.g. model: "
                             f"minilm); this run's model is a {type(model).__name__}. Use --magnitude SPARSITY, "
                             "which works on any model.")
    return model.bert.encoder.layer


def head_counts(model: nn.Module) -> list[int]:
    return [layer.attention.self.query.out_features // layer.attention.self.attention_head_size
            for layer in bert_layers(model)]


def head_importance(model: nn.Module, data: Encoded, *, batch_size: int, device: torch.device, pad_id: int,
                    padding_side: str = "right") -> torch.Tensor:
    """Importance of every head, shape (layers, heads), each layer's row scaled to unit L2 norm."""
    layers = bert_layers(model)
    counts = head_counts(model)
    if getattr(model.config, "pruned_heads", None) or len(set(counts)) != 1:
        # config.pruned_heads counts heads of the original layers; pruning again would renumber them.
        raise TuneforgeError("This run's heads have already been pruned; prune the original run with the larger "
                             "fraction instead (or use --magnitude on this one).")
    gates = torch.ones(len(layers), counts[0], device=device, requires_grad=True)  # xi, (L, H)
    size = layers[0].attention.self.attention_head_size

    def gate(index: int):
        def hook(module: nn.Module, args: tuple) -> tuple:
            context, *rest = args  # (B, T, H * d): the heads' outputs side by side
            shape = context.shape
            gated = context.view(*shape[:-1], -1, size) * gates[index].view(-1, 1)  # (B, T, H, d) * (H, 1)
            return (gated.view(shape), *rest)
        return hook

    handles = [layer.attention.output.dense.register_forward_pre_hook(gate(i)) for i, layer in enumerate(layers)]
    was_training = model.training
    model.to(device).eval()  # no dropout: the gradient of the model that will be pruned
    importance = torch.zeros_like(gates)
    try:
        for batch in batch_order(data.lengths(), batch_size, seed=0, shuffle=False, group_by_length=True):
            inputs = {k: v.to(device) for k, v in collate(data, batch, pad_id, padding_side).items()}
            loss = model(**inputs).loss
            (grad,) = torch.autograd.grad(loss * len(batch), gates)  # per-example sum, as I_h is an expectation
            importance += grad.abs()
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return importance / importance.norm(dim=1, keepdim=True).clamp_min(1e-20)


def choose_heads(importance: torch.Tensor, fraction: float, min_per_layer: int) -> dict[int, list[int]]:
    """The least important ``fraction`` of all heads, never leaving a layer with fewer than ``min_per_layer``."""
    n_layers, n_heads = importance.shape
    if min_per_layer > n_heads:
        raise TuneforgeError(f"min_heads_per_layer = {min_per_layer}, but the layers have {n_heads} heads.")
    target = round(fraction * n_layers * n_heads)
    allowed = n_layers * (n_heads - min_per_layer)
    if target > allowed:
        raise TuneforgeError(f"--heads {fraction} asks to remove {target} of {n_layers * n_heads} heads, but at "
                             f"most {allowed} can go while each layer keeps {min_per_layer}; ask for at most "
                             f"{math.floor(100 * allowed / (n_layers * n_heads)) / 100}.")
    if target == 0:
        raise TuneforgeError(f"--heads {fraction} of {n_layers * n_heads} heads rounds to none; ask for at least "
                             f"{math.ceil(100 * 0.5 / (n_layers * n_heads)) / 100}.")
    removed: dict[int, list[int]] = {i: [] for i in range(n_layers)}
    for flat in importance.flatten().argsort().tolist():
        layer, head = divmod(flat, n_heads)
        if len(removed[layer]) < n_heads - min_per_layer:
            removed[layer].append(head)
            target -= 1
            if target == 0:
                break
    return {layer: sorted(heads) for layer, heads in removed.items()}


def prune_heads(model: nn.Module, heads: dict[int, list[int]]) -> nn.Module:
    """Remove ``heads`` ({layer: [head ids]}) in place; the model becomes a
    :class:`PrunedBertForSequenceClassification`, which saves ``pruned_heads`` and its own code with it."""
    bert_layers(model)
    apply_pruned_heads(model, heads)
    model.config.pruned_heads = {str(k): v for k, v in heads.items()}
    model.__class__ = PrunedBertForSequenceClassification  # a subclass adding only __init__: nothing else changes
    return model
