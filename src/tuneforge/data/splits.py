"""Stratified, seeded splitting and subsampling.

Both functions draw from ``random.Random(seed)`` and group classes in order of first appearance
(never by iterating a set), so the result depends only on the seed and the input order, not on
``PYTHONHASHSEED`` or the Python version's set ordering.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from tuneforge.data.records import Example
from tuneforge.errors import TuneforgeError


def stratified_split(
    examples: Sequence[Example], *, validation: int | float, test: int | float, seed: int
) -> tuple[list[Example], list[Example], list[Example]]:
    """Split into (train, validation, test) with each class in proportion in every split.

    An int is a number of examples, a float a fraction of all examples. Per-class shares use the
    largest-remainder method so the split sizes are exact; then every class with enough examples
    gets at least one in each held-out split (taken from the class most above its quota), and train
    always keeps at least one example of every class. Each split comes back shuffled, because
    inputs are often sorted by label (one file per class) and a split in that order would put one
    class first in every evaluation batch.
    """
    examples = list(examples)
    n_test = _size(test, len(examples), "test")
    n_validation = _size(validation, len(examples), "validation")
    groups = _groups(examples)
    sizes = [len(members) for members in groups]
    if n_test + n_validation > len(examples) - len(groups):
        raise TuneforgeError(
            f"Cannot hold out {n_validation} validation and {n_test} test examples from "
            f"{len(examples)}: train needs at least one example of each of the {len(groups)} "
            "classes. Ask for smaller validation/test splits."
        )
    test_counts = _allocate(n_test, sizes, caps=[size - 1 for size in sizes])
    validation_counts = _allocate(
        n_validation,
        sizes,
        caps=[size - 1 - taken for size, taken in zip(sizes, test_counts, strict=True)],
    )

    rng = random.Random(seed)
    train: list[int] = []
    held_validation: list[int] = []
    held_test: list[int] = []
    for members, n_t, n_v in zip(groups, test_counts, validation_counts, strict=True):
        members = members[:]
        rng.shuffle(members)
        held_test += members[:n_t]
        held_validation += members[n_t : n_t + n_v]
        train += members[n_t + n_v :]
    for split in (train, held_validation, held_test):
        rng.shuffle(split)
    return (
        [examples[i] for i in train],
        [examples[i] for i in held_validation],
        [examples[i] for i in held_test],
    )


def subsample_stratified(examples: Sequence[Example], n: int, seed: int) -> list[Example]:
    """Keep ``n`` examples with the class proportions of ``examples`` (for ``max_train_samples``).

    Every class keeps at least one example. The kept examples stay in their input order; when
    ``n`` is at least the number of examples, all are returned.
    """
    examples = list(examples)
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise TuneforgeError(f"max_train_samples={n!r}: must be a positive whole number.")
    if n >= len(examples):
        return examples
    groups = _groups(examples)
    if n < len(groups):
        raise TuneforgeError(
            f"max_train_samples={n} is fewer than the {len(groups)} classes in train; every class "
            f"needs at least one example. Set max_train_samples to at least {len(groups)}."
        )
    sizes = [len(members) for members in groups]
    rng = random.Random(seed)
    kept: list[int] = []
    for members, count in zip(groups, _allocate(n, sizes, caps=sizes), strict=True):
        kept += rng.sample(members, count)
    return [examples[i] for i in sorted(kept)]


def _size(amount: int | float, total: int, name: str) -> int:
    """A split size as a count: ints are counts, floats fractions of ``total`` (rounded half up)."""
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        raise TuneforgeError(
            f"{name}={amount!r}: give a count (e.g. 1000) or a fraction (e.g. 0.1)."
        )
    if isinstance(amount, float):
        if not 0.0 <= amount < 1.0:
            raise TuneforgeError(
                f"{name}={amount}: a fraction must be at least 0 and below 1; for a count use a "
                f"whole number such as {name}={max(1, round(amount))}."
            )
        return int(amount * total + 0.5)
    if amount < 0:
        raise TuneforgeError(f"{name}={amount}: a split size cannot be negative.")
    return amount


def _groups(examples: list[Example]) -> list[list[int]]:
    """Example indices per label, classes in order of first appearance (deterministic)."""
    by_label: dict[str | None, list[int]] = {}
    for index, example in enumerate(examples):
        by_label.setdefault(example.label, []).append(index)
    return list(by_label.values())


def _allocate(total: int, sizes: list[int], caps: list[int]) -> list[int]:
    """Share ``total`` among classes in proportion to ``sizes``, at most ``caps[i]`` for class i.

    Largest remainder (Hamilton) apportionment in integer arithmetic: each class gets the floor of
    ``total * size / sum(sizes)``, and the examples left over go to the largest remainders (ties to
    the earlier class). Then a class left with none but room for one takes one from the class most
    above its exact quota that can spare it. The caller guarantees ``total <= sum(caps)``.
    """
    if total > sum(caps):
        raise ValueError(
            f"cannot place {total} examples within caps {caps}"
        )  # a bug, not user input
    whole = sum(sizes)
    counts = [min(total * size // whole, cap) for size, cap in zip(sizes, caps, strict=True)]
    order = sorted(range(len(sizes)), key=lambda i: (-(total * sizes[i] % whole), i))
    left = total - sum(counts)
    while left > 0:
        for i in order:
            if left and counts[i] < caps[i]:
                counts[i] += 1
                left -= 1
    for i, cap in enumerate(caps):
        donors = [j for j in range(len(counts)) if counts[j] > 1]
        if counts[i] == 0 and cap > 0 and donors:
            # The donor is the class most above its exact quota, so proportions suffer least.
            donor = max(donors, key=lambda j: (counts[j] * whole - total * sizes[j], -j))
            counts[donor] -= 1
            counts[i] += 1
    return counts
