"""Batched inference for token classification: subword probabilities, then word tags and entity spans."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from tuneforge.models.precision import Precision, autocast
from tuneforge.tasks.token_classification.bio import spans
from tuneforge.tasks.token_classification.encoding import IGNORE, TokenEncoded, word_tags
from tuneforge.tasks.token_classification.records import TokenExample
from tuneforge.training.batching import batch_order, collate


@torch.inference_mode()
def subword_probs(model: nn.Module, data: TokenEncoded, *, batch_size: int = 64, precision: Precision = "fp32",
                  device: torch.device | str = "cpu", pad_id: int = 0, padding_side: str = "right"
                  ) -> tuple[list[np.ndarray], float]:
    """Per example, tag probabilities of each subword (n_subwords, C); and the mean cross-entropy over the
    labelled subwords (nan when none is labelled)."""
    was_training = model.training
    model.eval()
    out: list[np.ndarray | None] = [None] * len(data)
    loss_sum, loss_count = 0.0, 0
    try:
        for batch in batch_order(data.lengths(), batch_size, seed=0, shuffle=False, group_by_length=True):
            inputs = collate(data, batch, pad_id, padding_side)
            labels = inputs.pop("labels")
            inputs = {k: v.to(device) for k, v in inputs.items()}
            with autocast(precision, device):
                logits = model(**inputs).logits  # (B, T, C)
            logp = torch.log_softmax(logits.float(), dim=-1).cpu()
            keep = labels != IGNORE
            if keep.any():
                loss_sum -= float(logp[keep].gather(-1, labels[keep].unsqueeze(-1)).sum())
                loss_count += int(keep.sum())
            probs = logp.exp().numpy()
            mask = inputs["attention_mask"].cpu().bool().numpy()
            for row, i in enumerate(batch):
                out[i] = probs[row][mask[row]]  # drop padding, whichever side it is on
    finally:
        model.train(was_training)
    return [p for p in out if p is not None], (loss_sum / loss_count if loss_count else float("nan"))


def predict_words(examples: Sequence[TokenExample], data: TokenEncoded, probs: list[np.ndarray],
                  labels: Sequence[str]) -> list[tuple[list[str], list[float]]]:
    """Each example's word tags and their probabilities."""
    assert data.word_subwords is not None
    return [word_tags(words, p, labels) for words, p in zip(data.word_subwords, probs)]


def entity_spans(example: TokenExample, tags: list[str], scores: list[float]) -> list[dict]:
    """Entities with character offsets into the example's own text: ``{"start", "end", "text", "type",
    "score"}``, ``text == example.text[start:end]``; score = mean tag probability of its words."""
    found = []
    for span in spans(tags):
        start, end = example.offsets[span.start][0], example.offsets[span.end - 1][1]
        score = sum(scores[span.start:span.end]) / (span.end - span.start)
        found.append({"start": start, "end": end, "text": example.text[start:end], "type": span.type,
                      "score": round(score, 6)})
    return found
