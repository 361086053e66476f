"""The k-shot sampler (stratified, seeded, exactly K per class, training split only) and contrastive pairs."""

from __future__ import annotations

from collections import Counter

import pytest

from tuneforge.data.records import Example
from tuneforge.errors import TuneforgeError
from tuneforge.fewshot.pairs import make_pairs
from tuneforge.fewshot.sampler import sample_k_shot

TRAIN = [Example(f"text {i}", label) for i, label in enumerate(["a"] * 10 + ["b"] * 6 + ["c"] * 4)]


def test_exactly_k_per_class_from_the_given_split():
    ids = sample_k_shot(TRAIN, 4, seed=0)
    assert len(ids) == len(set(ids)) == 12  # no example twice
    assert Counter(TRAIN[i].label for i in ids) == {"a": 4, "b": 4, "c": 4}
    assert all(0 <= i < len(TRAIN) for i in ids)


def test_seeded():
    assert sample_k_shot(TRAIN, 3, seed=7) == sample_k_shot(TRAIN, 3, seed=7)
    draws = {tuple(sorted(sample_k_shot(TRAIN, 3, seed=s))) for s in range(6)}
    assert len(draws) > 1  # other seeds, other samples


def test_too_few_examples_of_a_class_names_it_and_the_fix():
    with pytest.raises(TuneforgeError) as info:
        sample_k_shot(TRAIN, 5, seed=0)
    message = str(info.value)
    assert '"c" has 4' in message and "--shots 4" in message and '"b"' not in message


def test_shots_below_one():
    with pytest.raises(TuneforgeError, match="at least one"):
        sample_k_shot(TRAIN, 0, seed=0)


@pytest.mark.parametrize("labels", [[0, 0, 1, 1, 2, 2], [0, 0, 0, 0, 1, 1, 2, 2], [1, 0, 1, 0]])
def test_pairs_balanced_with_right_targets(labels):
    pairs = make_pairs(labels, iterations=5, seed=3)
    assert len(pairs) == 2 * 5 * len(labels)
    targets = Counter(t for _, _, t in pairs)
    assert targets[1.0] == targets[0.0]
    for i, j, target in pairs:
        assert i != j
        assert target == (1.0 if labels[i] == labels[j] else 0.0)
    # every example is the first member of a pair equally often
    assert set(Counter(i for i, _, _ in pairs).values()) == {2 * 5}


def test_pairs_seeded_and_single_example_classes():
    assert make_pairs([0, 0, 1, 1], 3, seed=1) == make_pairs([0, 0, 1, 1], 3, seed=1)
    assert make_pairs([0, 0, 1, 1], 3, seed=1) != make_pairs([0, 0, 1, 1], 3, seed=2)
    pairs = make_pairs([0, 1], 2, seed=0)  # one example per class: no positive partner exists
    assert pairs and all(t == 0.0 for _, _, t in pairs)
