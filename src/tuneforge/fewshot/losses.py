"""Pair losses of the contrastive phase: each takes the cosine similarities of a batch of pairs and their
targets (1 same class, 0 different) and returns a scalar.

- ``cosine`` (SetFit's CosineSimilarityLoss): L = mean_pairs (cos_p - t_p)^2. Every pair is pulled to its
  target on its own: positives towards cos = 1, negatives towards cos = 0.
- ``cosent`` (CoSENT, Su 2022, https://kexue.fm/archives/8847; sentence-transformers' CoSENTLoss): a ranking
  loss over the batch, L = log(1 + sum_{(p, n): t_p > t_n} exp(s * (cos_n - cos_p))), s = ``scale``. It only
  asks every positive pair of the batch to be more similar than every negative one, so it does not spend the
  encoder's capacity on pushing negatives to exactly 0 (orthogonal), and each batch of B pairs gives up to
  B^2 / 4 comparisons instead of B targets.
"""

from __future__ import annotations

import torch


def cosine_loss(cos: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SetFit's loss: mean squared error between each pair's cosine (B,) and its target (B,)."""
    return torch.nn.functional.mse_loss(cos, target)


def cosent_loss(cos: torch.Tensor, target: torch.Tensor, scale: float = 20.0) -> torch.Tensor:
    """CoSENT over the batch: (B,) cosines, (B,) targets; 0-ish when every positive outranks every negative."""
    diff = scale * (cos[None, :] - cos[:, None])  # (B, B): [p, n] = s * (cos_n - cos_p)
    ranked = target[:, None] > target[None, :]  # (B, B): p should be more similar than n
    terms = diff[ranked]
    # log(1 + sum exp(x)) = logsumexp over [0, x...]; a batch without a positive-negative couple gives log 1 = 0
    return torch.logsumexp(torch.cat([terms.new_zeros(1), terms]), dim=0)


AUTO_COSENT_FROM = 16  # examples per class; tuned at 8 and 16 per class only (docs/FEWSHOT.md)


def resolve_loss(name: str, labels: list[int]) -> str:
    """``auto``: ``cosent`` when the smallest class has at least AUTO_COSENT_FROM examples, else ``cosine``.

    On airline-sentiment's tuning seeds (validation split) CoSENT was better at 16 examples per class and worse
    at 8 (docs/FEWSHOT.md); ``auto`` encodes exactly that and nothing more.
    """
    if name != "auto":
        return name
    counts: dict[int, int] = {}
    for y in labels:
        counts[y] = counts.get(y, 0) + 1
    return "cosent" if counts and min(counts.values()) >= AUTO_COSENT_FROM else "cosine"


PAIR_LOSSES = {"cosine": lambda cos, target, scale: cosine_loss(cos, target),
               "cosent": cosent_loss}
