"""Entity-level metrics on a hand-checked example."""

from __future__ import annotations

import pytest

from tuneforge.tasks.token_classification.metrics import entity_metrics


def test_entity_scores_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "O", "B-PER"]]
    pred = [["B-PER", "I-PER", "O", "O"],      # PER right, LOC missed
            ["B-ORG", "O", "O", "B-LOC"]]      # ORG boundary wrong, PER predicted as LOC
    m = entity_metrics(gold, pred)
    # gold: PER x2, LOC, ORG = 4; predicted: PER, ORG(wrong span), LOC(wrong type) = 3; correct: 1
    assert m["precision"] == pytest.approx(1 / 3) and m["recall"] == pytest.approx(1 / 4)
    assert m["f1"] == pytest.approx(2 * (1 / 3) * (1 / 4) / (1 / 3 + 1 / 4))
    assert m["per_type"]["PER"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert m["per_type"]["LOC"]["f1"] == 0.0 and m["per_type"]["ORG"]["f1"] == 0.0
    assert m["macro_f1"] == pytest.approx((2 / 3) / 3)
    assert m["accuracy"] == pytest.approx(5 / 8) and m["count"] == 2 and m["entities"] == 4


def test_perfect_and_empty_predictions():
    gold = [["B-PER", "O"]]
    assert entity_metrics(gold, gold)["f1"] == 1.0
    none = entity_metrics(gold, [["O", "O"]])
    assert (none["precision"], none["recall"], none["f1"]) == (0.0, 0.0, 0.0)
