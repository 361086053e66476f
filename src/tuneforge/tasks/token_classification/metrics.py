"""Entity-level precision, recall and F1 (CoNLL-2000/2003 shared tasks; Tjong Kim Sang & De Meulder, 2003)
through seqeval, plus word-level tag accuracy.

An entity counts as found only if its type *and* both boundaries match a gold entity:
precision = correct / predicted, recall = correct / gold, F1 = 2PR / (P + R). ``f1`` is the micro average
(over all entities, the number usually reported), ``macro_f1`` the mean over entity types. seqeval's
default mode reads tags the way ``conlleval`` does (a stray ``I-X`` begins an entity).
"""

from __future__ import annotations

from collections.abc import Sequence


def entity_metrics(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict:
    """``precision``, ``recall``, ``f1`` (micro), ``macro_f1``, ``per_type`` {type: {precision, recall, f1,
    support}}, ``accuracy`` (words), ``count`` (sentences), ``entities`` (gold entities)."""
    from seqeval.metrics import classification_report

    gold = [list(g) for g in gold]
    predicted = [list(p) for p in predicted]
    words = sum(len(g) for g in gold)
    correct_words = sum(a == b for g, p in zip(gold, predicted) for a, b in zip(g, p))
    report = classification_report(gold, predicted, output_dict=True, zero_division=0)
    micro = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0})
    types = {k: v for k, v in report.items() if not k.endswith(" avg")}
    return {
        "precision": float(micro["precision"]), "recall": float(micro["recall"]), "f1": float(micro["f1-score"]),
        "macro_f1": float(report.get("macro avg", {}).get("f1-score", 0.0)),
        "per_type": {k: {"precision": float(v["precision"]), "recall": float(v["recall"]),
                         "f1": float(v["f1-score"]), "support": int(v["support"])} for k, v in sorted(types.items())},
        "accuracy": correct_words / max(words, 1),
        "count": len(gold),
        "entities": int(micro["support"]),
    }
