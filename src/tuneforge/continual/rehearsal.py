"""Rehearsal (experience replay): keep training on a few of task A's examples while learning task B.

The simplest remedy against forgetting (Robins 1995, "Catastrophic forgetting, rehearsal and pseudorehearsal";
Rolnick et al. 2019 "Experience replay for continual learning"): a fixed, seeded sample of A's training split
joins B's training data, so every epoch of B also sees A's inputs with A's labels. Memory cost: the sample's
texts. The loop shuffles the joined set, so A's examples are spread over B's batches.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from tuneforge.data.records import Example


def seeded_sample(examples: Sequence[Example], samples: int, seed: int) -> list[Example]:
    """``samples`` of ``examples`` (all of them if there are fewer), drawn with ``seed``, in their input order."""
    rng = random.Random(f"continual-{seed}")
    return [examples[i] for i in sorted(rng.sample(range(len(examples)), min(samples, len(examples))))]


def rehearsal_sample(previous_train: Sequence[Example], samples: int, seed: int) -> list[Example]:
    """``samples`` examples of A's training split drawn with ``seed`` (:func:`seeded_sample`), each marked
    ``meta["continual"] = "rehearsal"``."""
    return [Example(text=e.text, label=e.label, text_pair=e.text_pair, meta={**e.meta, "continual": "rehearsal"})
            for e in seeded_sample(previous_train, samples, seed)]
