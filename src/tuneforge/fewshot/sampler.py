"""The k-shot sample: K examples of every class from the training split, chosen by a seed."""

from __future__ import annotations

import random
from collections.abc import Sequence

from tuneforge.data.records import Example
from tuneforge.errors import TuneforgeError


def sample_k_shot(train: Sequence[Example], shots: int, seed: int) -> list[int]:
    """Indices into ``train`` of ``shots`` examples per class, drawn with ``random.Random(seed)``.

    Classes are taken in order of first appearance (never a set's order), each class's indices are sampled
    without replacement, and the result is shuffled, so it depends only on the seed and the input order.
    Only the training split is ever given to this function: the test split stays untouched.
    """
    if shots < 1:
        raise TuneforgeError(f"--shots {shots}: give at least one example per class.")
    by_label: dict[str | None, list[int]] = {}
    for i, example in enumerate(train):
        by_label.setdefault(example.label, []).append(i)
    short = {label: len(ids) for label, ids in by_label.items() if len(ids) < shots}
    if short:
        listing = ", ".join(f'"{label}" has {n}' for label, n in short.items())
        raise TuneforgeError(f"--shots {shots}: the training split has too few examples of some classes ({listing}). "
                             f"Use --shots {min(short.values())} or fewer, or add examples.")
    rng = random.Random(seed)
    picked = [i for ids in by_label.values() for i in rng.sample(ids, shots)]
    rng.shuffle(picked)
    return picked
