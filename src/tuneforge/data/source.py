"""Turn a ``data:`` config section into checked train / validation / test splits."""

from __future__ import annotations

from tuneforge.config.schema import DataConfig
from tuneforge.data.builtin import load_builtin
from tuneforge.data.files import read_examples
from tuneforge.data.records import DatasetSplits
from tuneforge.data.splits import stratified_split, subsample_stratified
from tuneforge.data.validate import labels_from_train, validate_splits


def load_splits(cfg: DataConfig, seed: int) -> DatasetSplits:
    """Built-in dataset or user files; validation split off the training file when not given; the test
    set defaults to the validation set (the metrics say so). ``max_train_samples`` subsamples training
    data after splitting, so validation and test never change with it."""
    if cfg.dataset is not None:
        splits = load_builtin(cfg.dataset)
        where = {}
    else:
        assert cfg.train is not None  # guaranteed by DataConfig's validator
        read = dict(text_column=cfg.text_column, text_pair_column=cfg.text_pair_column,
                    label_column=cfg.label_column)
        train = read_examples(cfg.train, **read)
        where = {"train": str(cfg.train)}
        if cfg.validation is not None:
            validation = read_examples(cfg.validation, **read)
            where["validation"] = str(cfg.validation)
        else:
            train, validation, _ = stratified_split(train, validation=cfg.validation_fraction, test=0, seed=seed)
        if cfg.test is not None:
            test = read_examples(cfg.test, **read)
            where["test"] = str(cfg.test)
            source = f"train {cfg.train}, test {cfg.test}"
        else:
            test = validation
            source = f"train {cfg.train} (test = validation data: no test file given)"
        splits = DatasetSplits(train=train, validation=validation, test=test, labels=labels_from_train(train),
                               name=cfg.train.stem, source=source)
    if cfg.max_train_samples is not None and cfg.max_train_samples < len(splits.train):
        splits.train = subsample_stratified(splits.train, cfg.max_train_samples, seed=seed)
        splits.labels = labels_from_train(splits.train)
    validate_splits(splits, where=where)
    return splits
