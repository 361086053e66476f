"""Fusing the BM25 and dense rankings into one.

- reciprocal rank fusion (Cormack, Clarke & Buettcher 2009): score(d) = sum over rankings of 1 / (k + rank(d)),
  rank 1-based, a ranking that does not hold d adds nothing. Only ranks count, so BM25's unbounded scores and
  cosines need no common scale.
- mix: score(d) = w * norm(cosine(d)) + (1 - w) * norm(bm25(d)), norm the min-max scaling over that ranking's
  candidates (the best gets 1, the worst 0; all equal: 1), a candidate missing from a ranking counts 0 there.

Ties break by document index, so results are deterministic.
"""

from __future__ import annotations


def rrf(rankings: list[list[int]], k: float = 60.0) -> list[tuple[int, float]]:
    """``rankings``: document indices, best first. Returns (index, fused score), best first."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, 1):
            scores[doc] = scores.get(doc, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def min_max(scores: dict[int, float]) -> dict[int, float]:
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    if high == low:
        return {d: 1.0 for d in scores}
    return {d: (s - low) / (high - low) for d, s in scores.items()}


def mix(dense: dict[int, float], lexical: dict[int, float], dense_weight: float) -> list[tuple[int, float]]:
    """``dense`` / ``lexical``: {index: raw score} of each retriever's candidates."""
    d, b = min_max(dense), min_max(lexical)
    fused = {doc: dense_weight * d.get(doc, 0.0) + (1 - dense_weight) * b.get(doc, 0.0) for doc in {*d, *b}}
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))
