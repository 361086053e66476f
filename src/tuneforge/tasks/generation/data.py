"""Turn a ``data:`` section into train / validation / test pairs for generation.

Files: ``data.train`` (and optionally ``validation``, ``test``) with ``data.prompt_column`` /
``data.response_column``; without a validation file, ``validation_fraction`` of the training pairs is held
out (seeded); without a test file, the test set is the validation set. Or a built-in pair dataset
(``support-dialogs``, ``-en``, ``-zh``) with its fixed split.
"""

from __future__ import annotations

import random

from tuneforge.data.records import DatasetSplits
from tuneforge.errors import TuneforgeError
from tuneforge.tasks.generation.files import read_pairs
from tuneforge.tasks.generation.records import Pair
from tuneforge.tasks.text_classification import check_builtin_task


def sample(pairs: list[Pair], n: int, seed: int) -> list[Pair]:
    """``n`` pairs drawn without replacement, in their original order (seeded); all of them if fewer."""
    if n >= len(pairs):
        return list(pairs)
    keep = sorted(random.Random(seed).sample(range(len(pairs)), n))
    return [pairs[i] for i in keep]


def load_splits(cfg, seed: int) -> DatasetSplits:
    if cfg.dataset is not None:
        from tuneforge.data.builtin import load_builtin

        check_builtin_task(cfg.dataset, "generation")
        splits = load_builtin(cfg.dataset)
    else:
        def read(path) -> list[Pair]:
            return read_pairs(path, prompt_column=cfg.prompt_column, response_column=cfg.response_column)

        train = read(cfg.train)
        if cfg.validation is not None:
            validation = read(cfg.validation)
        else:
            if len(train) < 2:
                raise TuneforgeError(f"data.train {cfg.train} has {len(train)} pair(s): too few to hold some out for "
                                     "validation. Add pairs or give data.validation.")
            order = list(range(len(train)))
            random.Random(seed).shuffle(order)
            held = set(order[:max(1, round(len(train) * cfg.validation_fraction))])
            validation = [p for i, p in enumerate(train) if i in held]
            train = [p for i, p in enumerate(train) if i not in held]
        test = read(cfg.test) if cfg.test is not None else validation
        source = f"train {cfg.train}" + (f", test {cfg.test}" if cfg.test else " (test = validation data)")
        splits = DatasetSplits(train=train, validation=validation, test=test, labels=[], name=cfg.train.stem,
                               source=source)
    if cfg.max_train_samples is not None:
        splits.train = sample(splits.train, cfg.max_train_samples, seed)
    return splits
