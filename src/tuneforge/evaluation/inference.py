"""Batched inference over encoded examples, sorted by length so batches carry little padding."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tuneforge.models.precision import Precision, autocast
from tuneforge.training.batching import Encoded, batch_order, collate


@torch.inference_mode()
def predict_proba(model: nn.Module, data: Encoded, *, batch_size: int = 64, precision: Precision = "fp32",
                  device: torch.device | str = "cpu", pad_id: int = 0, padding_side: str = "right") -> np.ndarray:
    """Class probabilities, shape (N, C), in the order of ``data``."""
    was_training = model.training
    model.eval()
    out: np.ndarray | None = None
    try:
        for batch in batch_order(data.lengths(), batch_size, seed=0, shuffle=False, group_by_length=True):
            inputs = collate(data, batch, pad_id, padding_side)
            inputs.pop("labels")
            inputs = {k: v.to(device) for k, v in inputs.items()}
            with autocast(precision, device):
                logits = model(**inputs).logits
            probs = torch.softmax(logits.float(), dim=-1).cpu().numpy()
            if out is None:
                out = np.zeros((len(data), probs.shape[1]), dtype=np.float32)
            out[batch] = probs
    finally:
        model.train(was_training)
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)
