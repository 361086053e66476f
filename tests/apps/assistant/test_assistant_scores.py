"""Fusion and retrieval metrics against values computed by hand."""

from __future__ import annotations

import math

import pytest

from tuneforge.apps.assistant.fusion import min_max, mix, rrf
from tuneforge.apps.assistant.metrics import first_rank, retrieval_metrics


def test_reciprocal_rank_fusion_by_hand():
    # bm25 ranks 7, 3, 5; dense ranks 3, 9. k = 60:
    #   3: 1/62 + 1/61;  7: 1/61;  9: 1/62;  5: 1/63
    fused = rrf([[7, 3, 5], [3, 9]], k=60)
    assert [d for d, _ in fused] == [3, 7, 9, 5]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)
    assert fused[1][1] == pytest.approx(1 / 61)
    assert fused[3][1] == pytest.approx(1 / 63)
    assert [d for d, _ in rrf([[1], [2]], k=1)] == [1, 2]  # a tie breaks by index


def test_score_mix_by_hand():
    assert min_max({1: 2.0, 2: 4.0, 3: 3.0}) == {1: 0.0, 2: 1.0, 3: 0.5}
    assert min_max({4: 0.3}) == {4: 1.0}
    # dense {1: .9, 2: .5, 3: .7} -> {1: 1, 2: 0, 3: .5}; bm25 {2: 8, 4: 2} -> {2: 1, 4: 0}; w = .25
    fused = dict(mix({1: 0.9, 2: 0.5, 3: 0.7}, {2: 8.0, 4: 2.0}, dense_weight=0.25))
    assert fused == pytest.approx({1: 0.25, 2: 0.75, 3: 0.125, 4: 0.0})
    assert [d for d, _ in mix({1: 0.9, 2: 0.5, 3: 0.7}, {2: 8.0, 4: 2.0}, 0.25)] == [2, 1, 3, 4]


def test_recall_and_mrr_by_hand():
    assert first_rank(["a", "b", "c"], "b") == 2
    assert first_rank(["a", "b"], "z") == math.inf
    ranks = [first_rank(r, "x") for r in (["x", "y"], ["y", "z", "w", "v", "x"], ["y", "z", "x"], ["y", "z"])]
    assert ranks == [1, 5, 3, math.inf]
    m = retrieval_metrics(ranks)
    assert m["recall@1"] == 0.25 and m["recall@5"] == 0.75 and m["queries"] == 4
    assert m["mrr"] == pytest.approx((1 + 1 / 5 + 1 / 3 + 0) / 4)
    assert retrieval_metrics([])["mrr"] == 0.0
