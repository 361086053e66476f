"""Mean pooling for BERT-style classifiers: the sentence embedding sentence-transformers models are trained for.

``all-MiniLM-L6-v2`` was trained (and SetFit uses it) with mean pooling over the real tokens, then unit
length: e = normalize(sum_t m_t h_t / sum_t m_t), h_t the last layer's states, m the attention mask. A
transformers classifier instead feeds the pooler (dense + tanh on [CLS]) to its head. :func:`use_mean_pooling`
swaps the pooler's output for e with two hooks (the mask is read from the body's inputs), so the model stays
a plain ``BertForSequenceClassification``: its weights save and load as usual (the pooler's own weights stay,
unused), and the head ``classifier`` reads e. Run.load installs the hooks again for runs with ``contrastive:``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tuneforge.errors import TuneforgeError
from tuneforge.evaluation.inference import PerThread

_MARK = "_tuneforge_mean_pooling"


class MeanPooling:
    """The installed hooks' state: ``last`` holds the latest batch's embeddings, (B, H), of the calling thread.
    ``mask`` and ``last`` are kept per thread (``tuneforge.evaluation.inference`` runs forward passes side by
    side on one model), in :func:`~tuneforge.evaluation.inference.thread_state`."""

    mask: torch.Tensor | None = PerThread()  # the batch's attention mask, (B, T)
    last: torch.Tensor | None = PerThread()  # the batch's pooled embeddings, (B, H)

    def __init__(self, normalize: bool) -> None:
        self.normalize = normalize

    def grab_mask(self, module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        self.mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)

    def pool(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        hidden = args[0]  # (B, T, H)
        mask = self.mask
        if mask is None or mask.dim() != 2 or mask.shape[1] != hidden.shape[1]:
            mask = torch.ones(hidden.shape[:2], device=hidden.device)
        m = mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
        if self.normalize:
            pooled = nn.functional.normalize(pooled.float(), dim=-1).to(hidden.dtype)
        self.last = pooled
        return pooled


def _body_with_pooler(model: nn.Module) -> nn.Module:
    for module in model.modules():
        if isinstance(getattr(module, "pooler", None), nn.Module) and hasattr(module, "embeddings"):
            return module
    raise TuneforgeError(f"contrastive: needs a BERT-style encoder with a pooler (e.g. model: minilm); "
                         f"{type(model).__name__} has none. Remove the contrastive: section for this model.")


def use_mean_pooling(model: nn.Module, normalize: bool = True) -> MeanPooling:
    """Install the hooks once; returns their state (whose ``last`` holds the embeddings of a forward pass)."""
    body = _body_with_pooler(model)
    existing = getattr(body, _MARK, None)
    if existing is not None:
        return existing
    state = MeanPooling(normalize)
    body.register_forward_pre_hook(state.grab_mask, with_kwargs=True)
    body.pooler.register_forward_hook(state.pool)
    object.__setattr__(body, _MARK, state)  # a plain attribute, not a submodule
    return state
