"""One backbone in memory for several runs: each run gets its own module tree whose frozen base weights are
the *same tensors*, so loading another adapter costs only its own weights, not another copy of the model.

Methods change the module tree they are given (peft wraps linear layers, adapters replace them, the head is
overwritten with the trained one), so no run is handed the template itself: each gets a copy of the
modules that shares every base parameter and buffer but has a head of its own, sized for its labels.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from tuneforge.methods.params import head_parameter_names
from tuneforge.models.backbones import Backbone, load_backbone


class SharedBackbone:
    """Loads ``model`` once; :meth:`backbone` hands out weight-sharing copies."""

    def __init__(self, model: str) -> None:
        self.model = model
        self._template: Backbone | None = None
        self.loads = 0  # how many times weights were read from disk (tests check it stays 1)

    def backbone(self, labels: list[str]) -> Backbone:
        if self._template is None:
            self._template = load_backbone(self.model, labels)
            self.loads += 1
        template = self._template
        head = head_parameter_names(template.model, template.new_parameters)
        # Share everything but the head: deepcopy treats the tensors in ``memo`` as already copied.
        memo: dict[int, object] = {id(p): p for n, p in template.model.named_parameters() if n not in head}
        memo.update({id(b): b for b in template.model.buffers()})
        model = copy.deepcopy(template.model, memo)
        if len(labels) != model.config.num_labels:
            _resize_head(model, head, len(labels))
        id2label = dict(enumerate(labels))
        model.config.id2label, model.config.label2id = id2label, {v: k for k, v in id2label.items()}
        return Backbone(model=model, tokenizer=template.tokenizer, path=template.path,
                        new_parameters=set(template.new_parameters))


def _resize_head(model: nn.Module, head: set[str], num_labels: int) -> None:
    """Replace the output layer of the head (the linear layer producing ``config.num_labels`` scores)."""
    old = model.config.num_labels
    outputs = {name.rsplit(".", 1)[0] for name in head}
    for name in outputs:
        layer = model.get_submodule(name)
        if isinstance(layer, nn.Linear) and layer.out_features == old:
            parent, _, child = name.rpartition(".")
            new = nn.Linear(layer.in_features, num_labels, bias=layer.bias is not None, dtype=layer.weight.dtype)
            with torch.no_grad():
                new.weight.normal_(0.0, getattr(model.config, "initializer_range", 0.02))
                if new.bias is not None:
                    new.bias.zero_()
            setattr(model.get_submodule(parent) if parent else model, child, new)
            break
    else:
        raise RuntimeError(f"found no output layer with {old} outputs among the head modules {sorted(outputs)}")
    model.config.num_labels = num_labels
