"""Pair generation for contrastive few-shot training (SetFit, Tunstall et al. 2022, arXiv:2209.11055).

For each of ``iterations`` rounds and each example x_i with label y_i: one positive pair (x_i, x_j) with
y_j = y_i, j != i, target 1; and one negative pair (x_i, x_k) with y_k != y_i, target 0. With N examples
that is 2 * iterations * N pairs, half positive: the balance SetFit's ``num_iterations`` sampling gives.
"""

from __future__ import annotations

import random
from collections.abc import Sequence


def make_pairs(labels: Sequence[int], iterations: int, seed: int) -> list[tuple[int, int, float]]:
    """``(i, j, target)`` triples over example indices; target 1.0 same class, 0.0 different."""
    rng = random.Random(seed)
    by_label: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_label.setdefault(y, []).append(i)
    others = {y: [i for i, z in enumerate(labels) if z != y] for y in by_label}
    pairs: list[tuple[int, int, float]] = []
    for _ in range(iterations):
        for i, y in enumerate(labels):
            same = by_label[y]
            if len(same) > 1:
                j = rng.choice(same)
                while j == i:
                    j = rng.choice(same)
                pairs.append((i, j, 1.0))
            if others[y]:
                pairs.append((i, rng.choice(others[y]), 0.0))
    rng.shuffle(pairs)
    return pairs
