"""validate_splits and labels_from_train."""

from __future__ import annotations

import pytest

from tuneforge.data import DatasetSplits, Example, labels_from_train, validate_splits
from tuneforge.data.validate import check_known_labels
from tuneforge.errors import TuneforgeError

WHERE = {"train": "data/train.csv", "validation": "data/dev.csv", "test": "data/test.csv"}


def examples(*labels: str) -> list[Example]:
    return [Example(text=f"text {i}", label=label) for i, label in enumerate(labels)]


def splits(train: list[Example], validation: list[Example], test: list[Example]) -> DatasetSplits:
    return DatasetSplits(train, validation, test, labels=labels_from_train(train))


def error_of(data: DatasetSplits, where: dict[str, str] | None = WHERE) -> str:
    with pytest.raises(TuneforgeError) as caught:
        validate_splits(data, where=where)
    return str(caught.value)


def test_good_splits_pass() -> None:
    validate_splits(splits(examples("a", "b", "a"), examples("b"), examples("a", "b")), where=WHERE)


def test_label_in_test_never_seen_in_train() -> None:
    message = error_of(
        splits(examples("pos", "neg"), examples("pos"), examples("pos", "Neutral", "Neutral"))
    )
    assert 'the test split (data/test.csv) has 2 example(s) labelled "Neutral"' in message
    assert "train split (data/train.csv) never uses" in message
    assert 'add "Neutral" examples to train, or remove them from test' in message


def test_unseen_label_suggests_a_spelling_fix() -> None:
    message = error_of(
        splits(examples("positive", "negative"), examples("Positive"), examples("negative"))
    )
    assert 'the validation split (data/dev.csv) has 1 example(s) labelled "Positive"' in message
    assert 'Did you mean "positive"?' in message


def test_fewer_than_two_classes_names_the_class_and_file() -> None:
    message = error_of(splits(examples("pos", "pos"), [], []), where={"train": "data/train.csv"})
    assert 'the train split (data/train.csv) has only one class, "pos"' in message


def test_empty_train_and_empty_given_split_are_reported_together() -> None:
    message = error_of(splits([], [], examples("a")))
    assert "the train split (data/train.csv) has no examples" in message
    assert "the validation split (data/dev.csv) has no examples" in message


def test_splits_not_given_may_be_empty() -> None:
    validate_splits(splits(examples("a", "b"), [], []), where={"train": "data/train.csv"})


def test_unlabelled_training_examples() -> None:
    train = examples("a", "b") + [Example(text="no label")]
    assert "1 example(s) without a label" in error_of(splits(train, [], []), where=None)


def test_label_list_must_cover_train() -> None:
    data = DatasetSplits(examples("a", "b", "c"), [], [], labels=["a", "b"])
    assert 'label(s) "c" missing from the label list' in error_of(data, where=None)


def test_labels_from_train_sorts_integers_numerically() -> None:
    assert labels_from_train(examples("10", "2", "-1", "2")) == ["-1", "2", "10"]
    assert labels_from_train(examples("pos", "neg", "10")) == ["10", "neg", "pos"]
    assert labels_from_train([Example("x")]) == []


# --- check_known_labels: what a finished run can score (tuneforge eval, Run.evaluate, ensemble) ---------------


def known_labels_error(items: list[Example], labels: list[str], source: str = "data/new.csv") -> str:
    with pytest.raises(TuneforgeError) as caught:
        check_known_labels(items, labels, source)
    return str(caught.value)


def test_known_labels_pass() -> None:
    check_known_labels(examples("neg", "pos", "neg"), ["neg", "pos"], "data/new.csv")


def test_unknown_labels_name_the_file_count_and_spelling() -> None:
    message = known_labels_error(examples("neg", "Pos", "Pos", "angry"), ["neg", "pos"])
    assert message.startswith("data/new.csv: ")
    assert '2 example(s) labelled "Pos"' in message and 'Did you mean "pos"?' in message
    assert '1 example(s) labelled "angry"' in message


def test_class_numbers_against_named_labels_show_the_run_order() -> None:
    message = known_labels_error(examples("0", "1", "2", "0"), ["negative", "neutral", "positive"])
    assert '0 = "negative", 1 = "neutral", 2 = "positive"' in message


def test_an_unlabelled_example_is_reported_not_a_crash() -> None:
    # None among the unknown labels used to reach sorted() next to strings: a TypeError
    message = known_labels_error([Example("a"), *examples("angry")], ["neg", "pos"])
    assert "1 example(s) have no label" in message and '"angry"' in message


def test_a_label_written_in_several_cases_is_reported_not_split_into_classes() -> None:
    # "positive" / "Positive" / "POSITIVE" trained as three classes without a word before
    train = examples("positive", "Positive", "negative", "positive", "POSITIVE", "negative")
    message = error_of(splits(train, examples("negative"), examples("positive")))
    assert "data/train.csv) writes one label 3 ways" in message
    assert '"positive" (2 examples), "POSITIVE" (1 example), "Positive" (1 example)' in message


def test_a_validation_label_in_another_case_suggests_the_train_spelling() -> None:
    message = error_of(splits(examples("pos", "neg"), examples("NEG"), examples("pos")))
    assert 'labelled "NEG"' in message and 'Did you mean "neg"?' in message


def test_a_csv_true_against_a_jsonl_true_says_how_booleans_are_read(tmp_path) -> None:
    # train.jsonl's true/false and test.csv's True/False were two label sets with no reason given
    from tuneforge.data import read_examples

    (tmp_path / "train.jsonl").write_text('{"text": "a", "label": true}\n{"text": "b", "label": false}\n')
    (tmp_path / "test.csv").write_text("text,label\nc,True\nd,false\n")
    train, test = read_examples(tmp_path / "train.jsonl"), read_examples(tmp_path / "test.csv")
    assert [e.label for e in train] == ["true", "false"] and [e.label for e in test] == ["True", "false"]
    message = error_of(splits(train, test, test), where={"train": "train.jsonl", "validation": "test.csv"})
    assert 'the validation split (test.csv) has 1 example(s) labelled "True"' in message
    assert ('Did you mean "true"? (A JSON true/false is read as the label "true"/"false"; a CSV or TSV cell keeps '
            'its text, so "True" and "true" are two labels.)') in message
    assert "labelled \"false\"" not in message
    message = known_labels_error(test, ["false", "true"])
    assert 'labelled "True"' in message and "a CSV or TSV cell keeps its text" in message
