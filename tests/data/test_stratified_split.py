"""stratified_split and subsample_stratified: deterministic, disjoint, proportional."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from tuneforge.data import Example, stratified_split, subsample_stratified
from tuneforge.errors import TuneforgeError


def dataset(counts: dict[str, int]) -> list[Example]:
    # Sorted by label on purpose, like a dataset that ships one file per class.
    return [
        Example(text=f"{label} {i}", label=label) for label, n in counts.items() for i in range(n)
    ]


COUNTS = {"neg": 600, "neu": 300, "pos": 95, "rare": 5}


def test_sizes_are_exact_and_splits_disjoint_and_complete() -> None:
    data = dataset(COUNTS)
    train, validation, test = stratified_split(data, validation=100, test=200, seed=0)
    assert (len(train), len(validation), len(test)) == (700, 100, 200)
    texts = [e.text for e in train + validation + test]
    assert len(texts) == len(set(texts)) and set(texts) == {e.text for e in data}


def test_each_class_is_proportional_and_present_everywhere() -> None:
    train, validation, test = stratified_split(dataset(COUNTS), validation=100, test=200, seed=3)
    for split, size in ((validation, 100), (test, 200)):
        per_class = Counter(e.label for e in split)
        assert set(per_class) == set(COUNTS)
        for label, n in COUNTS.items():
            assert abs(per_class[label] - size * n / 1000) <= 1.0
    assert set(Counter(e.label for e in train)) == set(COUNTS)


def test_fractions_mean_shares_of_all_examples() -> None:
    train, validation, test = stratified_split(dataset(COUNTS), validation=0.1, test=0.25, seed=0)
    assert (len(train), len(validation), len(test)) == (650, 100, 250)


def test_tiny_class_keeps_one_in_train_before_the_held_out_splits() -> None:
    train, validation, test = stratified_split(
        dataset({"a": 50, "b": 2}), validation=5, test=5, seed=0
    )
    assert Counter(e.label for e in train)["b"] == 1
    assert Counter(e.label for e in test)["b"] == 1


def test_same_seed_same_split_other_seed_other_split() -> None:
    data = dataset(COUNTS)
    first = stratified_split(data, validation=100, test=200, seed=7)
    assert stratified_split(data, validation=100, test=200, seed=7) == first
    assert stratified_split(data, validation=100, test=200, seed=8) != first


def test_splits_shuffle_label_sorted_input() -> None:
    _, _, test = stratified_split(dataset(COUNTS), validation=100, test=200, seed=0)
    assert len({e.label for e in test[:20]}) > 1


SCRIPT = """
import json
from tuneforge.data import Example, stratified_split, subsample_stratified
data = [Example(text=f"t{i}", label=label) for i, label in enumerate(["x", "y", "z"] * 40)]
train, validation, test = stratified_split(data, validation=10, test=20, seed=5)
small = subsample_stratified(train, 30, seed=5)
print(json.dumps([[e.text for e in s] for s in (train, validation, test, small)]))
"""


def test_result_does_not_depend_on_the_hash_seed() -> None:
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": os.pathsep.join(sys.path)}
        run = subprocess.run(
            [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True
        )
        outputs.append(json.loads(run.stdout))
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize(
    ("validation", "test", "fragment"),
    [
        (600, 500, "Cannot hold out 600 validation and 500 test"),
        (0.1, 1.0, "test=1.0: a fraction"),
        (-1, 10, "negative"),
        ("10", 10, "give a count"),
    ],
)
def test_impossible_sizes_are_errors(validation: object, test: object, fragment: str) -> None:
    with pytest.raises(TuneforgeError, match=fragment):
        stratified_split(dataset(COUNTS), validation=validation, test=test, seed=0)  # type: ignore[arg-type]


def test_subsample_keeps_every_class_and_the_proportions() -> None:
    data = dataset(COUNTS)
    small = subsample_stratified(data, 100, seed=1)
    per_class = Counter(e.label for e in small)
    assert len(small) == 100 and set(per_class) == set(COUNTS)
    assert per_class["neg"] == 60 and per_class["neu"] == 30
    assert subsample_stratified(data, 100, seed=1) == small
    order = {e.text: i for i, e in enumerate(data)}
    assert [order[e.text] for e in small] == sorted(order[e.text] for e in small)


def test_subsample_rare_class_survives_a_tiny_budget() -> None:
    small = subsample_stratified(dataset({"a": 1000, "b": 1}), 10, seed=0)
    assert Counter(e.label for e in small) == {"a": 9, "b": 1}


def test_subsample_larger_than_data_returns_everything() -> None:
    data = dataset({"a": 3, "b": 2})
    assert subsample_stratified(data, 50, seed=0) == data


def test_subsample_below_the_number_of_classes_is_an_error() -> None:
    with pytest.raises(TuneforgeError, match="fewer than the 4 classes"):
        subsample_stratified(dataset(COUNTS), 3, seed=0)
