"""Turn a ``data:`` section into train / validation / test sentences for token classification.

Files: JSONL or CoNLL (:mod:`files`); without a validation file, ``validation_fraction`` of the training
sentences is held out (seeded); without a test file, the test set is the validation set. The label list
(the head's classes) is ``O`` plus ``B-``/``I-`` of every entity type in the training data.
"""

from __future__ import annotations

import logging
import random

from tuneforge.data.records import DatasetSplits
from tuneforge.errors import TuneforgeError
from tuneforge.tasks.text_classification import check_builtin_task
from tuneforge.tasks.token_classification.bio import label_list
from tuneforge.tasks.token_classification.files import read_token_examples
from tuneforge.tasks.token_classification.records import TokenExample

log = logging.getLogger(__name__)


def _read(path) -> list[TokenExample]:
    examples, warnings = read_token_examples(path)
    for warning in warnings:
        log.warning(warning)
    return examples


def sample(examples: list[TokenExample], n: int, seed: int) -> list[TokenExample]:
    """``n`` sentences drawn without replacement, in their original order (seeded)."""
    keep = sorted(random.Random(seed).sample(range(len(examples)), n))
    return [examples[i] for i in keep]


def load_splits(cfg, seed: int) -> DatasetSplits:
    if cfg.dataset is not None:
        from tuneforge.data.builtin import load_builtin

        check_builtin_task(cfg.dataset, "token-classification")
        splits = load_builtin(cfg.dataset)
    else:
        train = _read(cfg.train)
        if cfg.validation is not None:
            validation = _read(cfg.validation)
        else:
            if len(train) < 2:
                raise TuneforgeError(f"data.train {cfg.train} has {len(train)} sentence(s): too few to hold some out "
                                     "for validation. Add sentences or give data.validation.")
            order = list(range(len(train)))
            random.Random(seed).shuffle(order)
            n_val = max(1, round(len(train) * cfg.validation_fraction))
            held = set(order[:n_val])
            validation = [e for i, e in enumerate(train) if i in held]
            train = [e for i, e in enumerate(train) if i not in held]
        test = _read(cfg.test) if cfg.test is not None else validation
        source = f"train {cfg.train}" + (f", test {cfg.test}" if cfg.test else " (test = validation data)")
        splits = DatasetSplits(train=train, validation=validation, test=test, labels=label_list(
            [e.tags for e in train]), name=cfg.train.stem, source=source)
        retag = "add training sentences with them to data.train {0}, or retag or remove them in {1}"
        origins = {"validation": (f"data.validation {cfg.validation}", retag.format(cfg.train, cfg.validation))
                   if cfg.validation is not None else
                   (f"The validation sentences held out of data.train {cfg.train} (validation_fraction "
                    f"{cfg.validation_fraction})", "every sentence with them was held out: add more sentences "
                    "with them to data.train, or give data.validation"),
                   "test": (f"data.test {cfg.test}", retag.format(cfg.train, cfg.test))}
    if cfg.max_train_samples is not None and cfg.max_train_samples < len(splits.train):
        splits.train = sample(splits.train, cfg.max_train_samples, seed)
    check_labels(splits, origins if cfg.dataset is None else None)
    return splits


def check_labels(splits: DatasetSplits, origins: dict[str, tuple[str, str]] | None = None) -> None:
    """Every split is tagged, and validation/test use no entity type the training data lacks. ``origins``:
    per split, where its sentences came from and how to fix an unknown type (user files)."""
    if len(splits.labels) < 3:
        raise TuneforgeError(f"The training data of {splits.name} has no entities (every tag is O): a tagger "
                             "needs B-/I- tags to learn from.")
    for name in ("validation", "test"):
        unknown = sorted({t for e in getattr(splits, name) for t in e.tags or () if t not in splits.labels})
        untagged = sum(e.tags is None for e in getattr(splits, name))
        if unknown:
            types = sorted({t.split("-", 1)[-1] for t in unknown})
            known = sorted({t.split("-", 1)[-1] for t in splits.labels if t != "O"})
            first = next(e for e in getattr(splits, name) if set(e.tags or ()) & set(unknown))
            where, fix = (origins or {}).get(name, (f"The {name} data of {splits.name}", "tag types must match"))
            raise TuneforgeError(f"{where}: tags entity type(s) {', '.join(types)} ({', '.join(unknown)}) that the "
                                 f"training data never tags (its types: {', '.join(known)}), e.g. in the sentence "
                                 f"{first.text[:80]!r}. A tagger only predicts the types it trained on: {fix}.")
        if untagged:
            raise TuneforgeError(f"{untagged} {name} sentence(s) of {splits.name} have no tags.")
