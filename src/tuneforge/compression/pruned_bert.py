"""A BERT classifier with attention heads physically removed, loadable with transformers alone.

transformers 4 had ``PreTrainedModel.prune_heads`` and re-applied ``config.pruned_heads`` when loading;
transformers 5 removed both. A BERT layer's shapes follow from the config alone (every layer has
``num_attention_heads`` heads of ``hidden_size / num_attention_heads`` dimensions), so a model with fewer
heads in some layers cannot be described by a plain ``BertConfig``. This file restores the old behaviour:
``config.pruned_heads`` ({layer: [removed head ids]}) is applied in ``__init__``, before the weights load.

This module imports only torch and transformers: ``save_pretrained`` copies it into the model folder (the
``auto_map`` in config.json points at it), so the folder loads without tuneforge::

    AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)

Removing head h of a layer with head size d drops rows h*d..(h+1)*d-1 of the query, key and value
projections (weights and biases) and the same columns of the attention output projection; the
attention itself splits Q, K, V into heads by ``view(..., -1, d)``, so it follows the new width.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.models.bert.modeling_bert import BertForSequenceClassification


def _keep_rows(linear: nn.Linear, index: torch.Tensor) -> nn.Linear:
    """A new Linear computing only the output features ``index`` of ``linear``."""
    new = nn.Linear(linear.in_features, len(index), bias=linear.bias is not None,
                    device=linear.weight.device, dtype=linear.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(linear.weight.index_select(0, index))
        if linear.bias is not None:
            new.bias.copy_(linear.bias.index_select(0, index))
    new.weight.requires_grad_(linear.weight.requires_grad)
    return new


def _keep_columns(linear: nn.Linear, index: torch.Tensor) -> nn.Linear:
    """A new Linear reading only the input features ``index`` of ``linear`` (the bias is unchanged)."""
    new = nn.Linear(len(index), linear.out_features, bias=linear.bias is not None,
                    device=linear.weight.device, dtype=linear.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(linear.weight.index_select(1, index))
        if linear.bias is not None:
            new.bias.copy_(linear.bias)
    new.weight.requires_grad_(linear.weight.requires_grad)
    return new


def remove_heads(layer: nn.Module, heads: list[int]) -> None:
    """Remove ``heads`` (ids among the layer's current heads) from one BERT layer, in place."""
    attention = layer.attention.self
    size = attention.attention_head_size
    count = attention.query.out_features // size
    keep = [h for h in range(count) if h not in set(heads)]
    if not keep:
        raise ValueError("cannot remove every head of a layer")
    device = attention.query.weight.device
    index = torch.cat([torch.arange(h * size, (h + 1) * size, device=device) for h in keep])
    attention.query = _keep_rows(attention.query, index)
    attention.key = _keep_rows(attention.key, index)
    attention.value = _keep_rows(attention.value, index)
    output = layer.attention.output
    output.dense = _keep_columns(output.dense, index)
    attention.num_attention_heads = len(keep)
    attention.all_head_size = len(keep) * size


def apply_pruned_heads(model: nn.Module, pruned_heads: dict) -> None:
    """Remove ``pruned_heads`` ({layer index: [original head ids]}) from a full-size model, in place."""
    layers = model.bert.encoder.layer
    for index, heads in sorted((int(k), list(v)) for k, v in (pruned_heads or {}).items()):
        if heads:
            remove_heads(layers[index], heads)


class PrunedBertForSequenceClassification(BertForSequenceClassification):
    """``BertForSequenceClassification`` with ``config.pruned_heads`` removed at construction."""

    def __init__(self, config) -> None:
        super().__init__(config)
        apply_pruned_heads(self, getattr(config, "pruned_heads", None) or {})


PrunedBertForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
