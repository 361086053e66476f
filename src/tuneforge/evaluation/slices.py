"""Metrics per slice of the data: where is a model good, where is it biased?

``tuneforge eval RUN_DIR FILE --by source`` groups the examples by a metadata column of the file (any column
other than the text, text pair and label columns is kept in ``Example.meta``); ``--by length`` groups them into
token-length quartiles, counted with the run's own tokenizer. Each slice gets accuracy, macro-F1 (over the
labels present in the slice's gold labels or predictions, so a slice without some class is not punished for
it) and its support; the gap between the best and worst slice is reported too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tuneforge.data.records import Example
from tuneforge.data.validate import check_known_labels
from tuneforge.errors import TuneforgeError, did_you_mean

LENGTH = "length"
MISSING = "(missing)"


def slice_keys(examples: Sequence[Example], by: str, tokenizer: Any = None) -> list[str]:
    """The slice of each example: its ``meta[by]``, or its token-length bucket for ``by="length"``."""
    if by == LENGTH and not any(LENGTH in e.meta for e in examples):  # a real column named length wins
        return length_buckets(examples, tokenizer)
    if not any(by in e.meta for e in examples):
        fields = sorted({key for e in examples for key in e.meta})
        hint = did_you_mean(by, fields) if fields else " The file has no columns besides the text and label."
        raise TuneforgeError(f'--by {by}: no example has a field "{by}".{hint} Use a column of the data file, '
                             f'or "{LENGTH}" for token-length buckets.')
    return [e.meta.get(by, MISSING) for e in examples]


def length_buckets(examples: Sequence[Example], tokenizer: Any = None, buckets: int = 4) -> list[str]:
    """Quartiles of token length (words when no tokenizer is given), named by their range, e.g. "9-14 tokens".

    Quantile edges give slices of similar support, so their metrics are comparably noisy; fixed edges
    would leave most slices empty on short texts such as tweets."""
    if tokenizer is not None:
        texts = [e.text for e in examples]
        pairs = [e.text_pair for e in examples]
        ids = tokenizer(texts, [p or "" for p in pairs] if any(pairs) else None, truncation=False)["input_ids"]
        lengths, unit = np.array([len(x) for x in ids]), "tokens"
    else:
        lengths, unit = np.array([len(e.text.split()) for e in examples]), "words"
    edges = np.unique(np.quantile(lengths, np.linspace(0, 1, buckets + 1)[1:-1], method="lower"))
    which = np.searchsorted(edges, lengths, side="left")  # bucket b holds lengths in (edges[b-1], edges[b]]
    names = {}
    for b in np.unique(which):
        members = lengths[which == b]
        names[b] = f"{members.min()}-{members.max()} {unit}"
    return [names[b] for b in which]


def slice_metrics(y_true: Sequence[int], y_pred: Sequence[int], keys: Sequence[str],
                  labels: Sequence[str]) -> dict[str, Any]:
    """``{"slices": {key: {accuracy, macro_f1, count}}, "gap": {...}}``; slices sorted by name (length
    buckets by their lower edge)."""
    from sklearn.metrics import f1_score

    y_true, y_pred, keys_arr = np.asarray(y_true), np.asarray(y_pred), np.asarray(keys, dtype=object)
    slices: dict[str, dict[str, float | int]] = {}
    for key in sorted(set(keys), key=_sort_key):
        rows = keys_arr == key
        t, p = y_true[rows], y_pred[rows]
        present = sorted(set(t.tolist()) | set(p.tolist()))
        slices[key] = {"accuracy": float((t == p).mean()),
                       "macro_f1": float(f1_score(t, p, labels=present, average="macro", zero_division=0)),
                       "count": int(rows.sum()),
                       "label_counts": {labels[i]: int((t == i).sum()) for i in range(len(labels))}}
    acc = {k: v["accuracy"] for k, v in slices.items()}
    worst, best = min(acc, key=acc.get), max(acc, key=acc.get)
    return {"slices": slices, "gap": {"accuracy": acc[best] - acc[worst], "best": best, "worst": worst}}


def evaluate_slices(run: Any, examples: Sequence[Example], by: str | Sequence[str],
                    batch_size: int = 64) -> dict[str, Any]:
    """Overall metrics plus metrics per slice for each ``by`` field: ``{"overall": {...}, "by": {field: ...}}``.

    ``run`` is anything with ``labels``, ``tokenizer`` (optional) and ``predict_proba`` (a Run, an ONNX export).
    """
    from tuneforge.evaluation.metrics import classification_metrics, mean_loss

    fields = [by] if isinstance(by, str) else list(by)
    keys = {field: slice_keys(examples, field, getattr(run, "tokenizer", None)) for field in fields}
    check_known_labels(examples, run.labels)
    probs = run.predict_proba(list(examples), batch_size=batch_size)
    y_true = [run.labels.index(e.label) for e in examples]
    y_pred = probs.argmax(-1).tolist()
    overall = classification_metrics(y_true, y_pred, run.labels)
    overall["loss"] = mean_loss(probs, y_true)
    return {"overall": overall, "by": {field: slice_metrics(y_true, y_pred, keys[field], run.labels)
                                       for field in fields}}


def _sort_key(key: str) -> tuple:
    head = key.split("-", 1)[0]
    return (0, int(head), key) if head.isdigit() else (1, 0, key)


def slice_table(field: str, result: dict[str, Any]):
    """A rich table of one field's slices, with the accuracy gap in its title."""
    from rich.table import Table

    gap = result["gap"]
    table = Table("slice", "count", "accuracy", "macro-F1",
                  title=f"by {field}: accuracy gap {gap['accuracy']:.3f} ({gap['best']} best, {gap['worst']} worst)")
    for key, m in result["slices"].items():
        table.add_row(key, str(m["count"]), f"{m['accuracy']:.3f}", f"{m['macro_f1']:.3f}")
    return table
