"""Retrieval quality on queries with one right answer: recall@k and mean reciprocal rank.

For query i let r_i be the 1-based position of the first hit whose answer is the query's (hits are distinct
answers), or infinity when it is not among the hits. Then recall@k = mean_i [r_i <= k] and
MRR = mean_i 1 / r_i (1 / infinity = 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def first_rank(ranked: Sequence[str], gold: str) -> float:
    """1-based position of ``gold`` in ``ranked``, or ``math.inf``."""
    for position, group in enumerate(ranked, 1):
        if group == gold:
            return float(position)
    return math.inf


def retrieval_metrics(ranks: Sequence[float], ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    n = len(ranks)
    if n == 0:
        return {**{f"recall@{k}": 0.0 for k in ks}, "mrr": 0.0, "queries": 0}
    out: dict[str, float] = {f"recall@{k}": sum(r <= k for r in ranks) / n for k in ks}
    out["mrr"] = sum(1.0 / r for r in ranks) / n
    out["queries"] = n
    return out
