"""Ranking metrics against values computed by hand: AUC with ties, NDCG@k and recall@k with ties, a cut-off
inside a tied group and relevant items that are not among the candidates."""

from __future__ import annotations

import math

import pytest

from tuneforge.apps.recommend.metrics import auc, ndcg_recall_at_k, ranking_metrics

L3 = math.log2(3)


def test_auc_counts_ties_as_one_half():
    # clicks 0.9 and 0.8, non-clicks 0.8 and 0.1: pairs 1 + 1 + 0.5 + 1 out of 4
    assert auc([0.9, 0.8, 0.8, 0.1], [1, 0, 1, 0]) == pytest.approx(0.875)
    assert auc([0.1, 0.2], [1, 0]) == 0.0
    assert auc([0.5, 0.5, 0.5], [1, 0, 0]) == pytest.approx(0.5)


def test_auc_is_undefined_with_one_class():
    assert auc([0.3, 0.4], [1, 1]) is None
    assert auc([0.3, 0.4], [0, 0]) is None


def test_ndcg_and_recall_without_ties():
    ndcg, recall = ndcg_recall_at_k({"a": 3, "b": 2, "c": 1, "d": 0}, {"b"}, k=10)
    assert ndcg == pytest.approx(1 / L3)
    assert recall == 1.0
    ndcg, recall = ndcg_recall_at_k({"a": 3, "b": 2, "c": 1, "d": 0}, {"a", "c"}, k=10)
    assert ndcg == pytest.approx((1 + 1 / 2) / (1 + 1 / L3))  # ranks 0 and 2 against ideal ranks 0 and 1


def test_tied_group_shares_its_ranks():
    ndcg, recall = ndcg_recall_at_k({"a": 1, "b": 1, "c": 0}, {"a"}, k=10)
    assert ndcg == pytest.approx((1 + 1 / L3) / 2)  # a is at rank 0 or 1, each half the time
    assert recall == 1.0


def test_cut_off_inside_a_tied_group():
    # b, c, d tie on ranks 1..3; with k=2 only rank 1 counts, and c holds it a third of the time
    ndcg, recall = ndcg_recall_at_k({"a": 2, "b": 1, "c": 1, "d": 1}, {"c"}, k=2)
    assert ndcg == pytest.approx((1 / L3) / 3)
    assert recall == pytest.approx(1 / 3)


def test_missing_positive_counts_against_the_model():
    # z was clicked but is not a candidate: the ideal DCG still counts two relevant items
    ndcg, recall = ndcg_recall_at_k({"a": 1, "b": 0}, {"a", "z"}, k=10)
    assert ndcg == pytest.approx(1 / (1 + 1 / L3))
    assert recall == 0.5


def test_relevant_item_below_the_cut_scores_zero():
    scores = {f"i{n:02d}": float(20 - n) for n in range(12)}
    assert ndcg_recall_at_k(scores, {"i10"}, k=10) == (0.0, 0.0)
    assert ndcg_recall_at_k(scores, {"i09"}, k=10) == (pytest.approx(1 / math.log2(11)), 1.0)


def test_users_without_a_click_are_left_out_of_the_mean():
    per_user = {"u1": ({"a": 1, "b": 0}, {"a"}), "u2": ({"a": 1, "b": 0}, {"b"}), "u3": ({"a": 1}, set())}
    m = ranking_metrics(per_user, k=1)
    assert m["users"] == 2
    assert m["ndcg@1"] == pytest.approx(0.5)
    assert m["recall@1"] == pytest.approx(0.5)
