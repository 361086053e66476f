"""Checks across the splits of a dataset: what a single file cannot tell on its own."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from tuneforge.data.problems import raise_problems
from tuneforge.data.records import DatasetSplits, Example
from tuneforge.errors import closest

_INTEGER = re.compile(r"-?\d+")


def labels_from_train(examples: Iterable[Example]) -> list[str]:
    """The sorted unique labels; numeric order when every label is an integer ("2" before "10")."""
    labels = {example.label for example in examples if example.label is not None}
    if labels and all(_INTEGER.fullmatch(label) for label in labels):
        return sorted(labels, key=int)
    return sorted(labels)


def validate_splits(splits: DatasetSplits, *, where: dict[str, str] | None = None) -> None:
    """Raise one error listing every problem across the splits; return None when they are usable.

    ``where`` maps a split name ("train", "validation", "test") to the file it came from, for the
    messages; a split named in ``where`` was given by the user, so it must not be empty. Checks:
    train has examples, all labelled, with at least two classes; ``splits.labels`` covers them;
    validation and test use only labels seen in train (a model cannot predict a class it never saw,
    and such examples would silently count as errors).
    """
    where = where or {}
    source = {
        name: f" ({where[name]})" if name in where else ""
        for name in ("train", "validation", "test")
    }
    problems: list[str] = []
    train_counts = Counter(example.label for example in splits.train if example.label is not None)
    unlabelled = len(splits.train) - train_counts.total()

    if not splits.train:
        problems.append(f"the train split{source['train']} has no examples; add labelled examples.")
    elif unlabelled:
        problems.append(
            f"the train split{source['train']} has {unlabelled} example(s) without a label; every "
            "training example needs one."
        )
    if splits.train and len(train_counts) == 1:
        (only,) = train_counts
        problems.append(
            f'the train split{source["train"]} has only one class, "{only}"; a classifier needs '
            "examples of at least two classes. Check label_column, or add examples of the other "
            "classes."
        )
    problems += _spelling_problems(train_counts, f"the train split{source['train']}")
    known = set(splits.labels)
    if splits.labels and (unlisted := [label for label in train_counts if label not in known]):
        problems.append(
            f"the train split{source['train']} uses label(s) {_quoted(unlisted)} missing from the "
            f"label list {_quoted(splits.labels)}; add them to the list or fix the examples."
        )

    for name, examples in (("validation", splits.validation), ("test", splits.test)):
        if name in where and not examples:
            problems.append(f"the {name} split{source[name]} has no examples.")
        counts = Counter(example.label for example in examples if example.label is not None)
        for label, count in counts.items():
            if label in train_counts or not splits.train:
                continue
            near = _near(label, train_counts)
            typo = f' Did you mean "{near}"?{_boolean_note(label, near)}' if near else ""
            problems.append(
                f'the {name} split{source[name]} has {count} example(s) labelled "{label}", a '
                f"label the train split{source['train']} never uses (train labels: "
                f'{_quoted(labels_from_train(splits.train))}).{typo} Fix the label, add "{label}" '
                f"examples to train, or remove them from {name}."
            )
    if problems:
        raise_problems(f"The dataset {splits.name!r} cannot be used for training:", problems)


def check_known_labels(examples: Iterable[Example], labels: list[str], source: str = "the examples") -> None:
    """Raise one error when an example cannot be scored by a model that knows ``labels``: a label it never saw
    in training (with the count, a close spelling, and the class order when the file holds class numbers),
    or no label at all. ``source`` names the file in the message."""
    counts = Counter(example.label for example in examples)
    problems = []
    missing = counts.pop(None, 0)
    if missing:
        problems.append(f"{missing} example(s) have no label; evaluation needs the gold label of each example.")
    unknown = sorted(label for label in counts if label not in labels)
    numbers = bool(unknown) and all(_INTEGER.fullmatch(label) for label in counts) and not all(
        _INTEGER.fullmatch(label) for label in labels)
    for label in unknown:
        near = _near(label, labels)
        typo = f' Did you mean "{near}"?{_boolean_note(label, near)}' if near and not numbers else ""
        problems.append(f'{counts[label]} example(s) labelled "{label}", a label never seen in training (the run '
                        f"knows {_quoted(labels)}).{typo} Fix the label, or remove those examples.")
    if numbers:
        order = ", ".join(f'{i} = "{label}"' for i, label in enumerate(labels))
        problems.append(f"the labels are all numbers but the run's are names; if they are class numbers, write "
                        f"the names instead (the run's order: {order}).")
    if problems:
        raise_problems(f"{source}: labels the run cannot score; nothing was evaluated:", problems)


def _near(label: str, labels: Iterable[str]) -> str | None:
    """The label the user probably meant: the same one in another case ("Positive"), else a close spelling."""
    labels = list(labels)
    same = next((known for known in labels if known.casefold() == label.casefold()), None)
    return same or closest(label, labels)


def _boolean_note(label: str, near: str) -> str:
    """Why "True" and "true" are two labels, when one file is JSON and the other CSV (files.py's _as_string)."""
    if label != near and label.casefold() == near.casefold() and label.casefold() in ("true", "false"):
        return (" (A JSON true/false is read as the label \"true\"/\"false\"; a CSV or TSV cell keeps its text, "
                f'so "{label}" and "{near}" are two labels.)')
    return ""


def _spelling_problems(counts: Counter[str | None], where: str) -> list[str]:
    """Labels that differ only in case ("positive", "Positive"): exact strings are classes, so each spelling
    would silently become a class of its own."""
    spellings: dict[str, list[str]] = {}
    for label in counts:
        if label is not None:
            spellings.setdefault(label.casefold(), []).append(label)
    problems = []
    for variants in spellings.values():
        if len(variants) > 1:
            variants.sort(key=lambda label: (-counts[label], label))
            listed = ", ".join(f'"{label}" ({_examples(counts[label])})' for label in variants)
            problems.append(f"{where} writes one label {len(variants)} ways: {listed}. Labels are compared "
                            f"exactly, so these would be {len(variants)} different classes; write the label one way "
                            f'(e.g. "{variants[0]}" everywhere).')
    return problems


def _quoted(labels: Iterable[str]) -> str:
    return ", ".join(f'"{label}"' for label in labels)


def _examples(count: int) -> str:
    return f"{count} example" + ("" if count == 1 else "s")
