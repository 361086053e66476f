"""Ranking metrics: AUC over logged impressions, NDCG@k and recall@k over the catalogue, with ties handled.

Ties are not broken by item order (which would reward whatever order the catalogue happens to have, and
flatter the popularity baseline, whose scores tie often): a group of items with equal scores spread over
ranks p..p+g-1 shares those ranks equally, which is the expectation over every order of the group
(McSherry & Najork, "Computing information retrieval performance measures efficiently in the presence of
tied scores", ECIR 2008).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def auc(scores: Sequence[float], labels: Sequence[int]) -> float | None:
    """P(score of a random click > score of a random non-click), ties counting one half (Mann-Whitney U).

    None when the labels hold only one class.
    """
    pairs = sorted(zip(scores, labels), key=lambda p: p[0])
    positives = sum(1 for _, y in pairs if y)
    negatives = len(pairs) - positives
    if positives == 0 or negatives == 0:
        return None
    rank_sum, i = 0.0, 0
    while i < len(pairs):  # average 1-based rank over each group of equal scores
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        mean_rank = (i + 1 + j) / 2
        rank_sum += mean_rank * sum(1 for _, y in pairs[i:j] if y)
        i = j
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def _groups(scores: dict[str, float]) -> list[list[str]]:
    """Items grouped by equal score, best group first."""
    groups: dict[float, list[str]] = {}
    for item, score in scores.items():
        groups.setdefault(score, []).append(item)
    return [groups[s] for s in sorted(groups, reverse=True)]


def ndcg_recall_at_k(scores: dict[str, float], relevant: set[str], k: int = 10) -> tuple[float, float] | None:
    """(NDCG@k, recall@k) of one user, expected over the orders of tied scores; None without relevant items.

    ``scores`` are the candidates (items the user could be shown). A relevant item missing from them
    (already clicked in train, or unknown) can never be ranked: it lowers recall and NDCG, whose ideal
    DCG counts every relevant item, DCG@k = sum over ranks r < k of rel / log2(r + 2).
    """
    if not relevant:
        return None
    dcg = hits = 0.0
    start = 0
    for group in _groups(scores):
        end = start + len(group)
        if start >= k:
            break
        inside = range(start, min(end, k))  # the group's ranks that fall in the top k
        r = sum(1 for item in group if item in relevant)
        if r:
            dcg += r * sum(1 / math.log2(p + 2) for p in inside) / len(group)
            hits += r * len(inside) / len(group)
        start = end
    ideal = sum(1 / math.log2(p + 2) for p in range(min(k, len(relevant))))
    return dcg / ideal, hits / len(relevant)


def ranking_metrics(per_user: dict[str, tuple[dict[str, float], set[str]]], k: int = 10) -> dict[str, float]:
    """Mean NDCG@k and recall@k over the users with at least one relevant item."""
    values = [v for scores, relevant in per_user.values() if (v := ndcg_recall_at_k(scores, relevant, k))]
    if not values:
        return {f"ndcg@{k}": float("nan"), f"recall@{k}": float("nan"), "users": 0}
    return {f"ndcg@{k}": sum(v[0] for v in values) / len(values),
            f"recall@{k}": sum(v[1] for v in values) / len(values), "users": len(values)}
