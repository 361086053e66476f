"""export_splits writes JSON lines that read_examples reads back unchanged."""

from __future__ import annotations

import json
from pathlib import Path

from tuneforge.data import DatasetSplits, Example, export_splits, read_examples


def sample() -> DatasetSplits:
    return DatasetSplits(
        train=[
            Example("好评，很安静", "positive", meta={"airline": "united"}),
            Example("line\u2028separator inside", "negative"),
        ],
        validation=[Example("a premise", "positive", text_pair="a hypothesis")],
        test=[Example("meta clash", "negative", meta={"label": "original", "confidence": "0.6"})],
        labels=["negative", "positive"],
        name="demo",
        source="unit test",
    )


def test_export_then_read_round_trips(tmp_path: Path) -> None:
    splits = sample()
    paths = export_splits(splits, tmp_path / "run" / "data")
    assert set(paths) == {"train", "validation", "test", "labels"}
    for name in ("train", "test"):
        back = read_examples(paths[name])
        assert back == getattr(splits, name)
    train_back = read_examples(paths["train"])
    assert [e.meta for e in train_back] == [{"airline": "united"}, {}]
    assert read_examples(paths["validation"], text_pair_column="text_pair") == splits.validation


def test_files_are_readable_utf8_with_text_pair_only_when_set(tmp_path: Path) -> None:
    paths = export_splits(sample(), tmp_path)
    assert "好评" in paths["train"].read_text(encoding="utf-8")
    train_records = [
        json.loads(line) for line in paths["train"].read_text(encoding="utf-8").split("\n") if line
    ]
    assert all("text_pair" not in record for record in train_records)
    (test_record,) = [
        json.loads(line) for line in paths["test"].read_text(encoding="utf-8").splitlines()
    ]
    assert test_record == {
        "text": "meta clash",
        "label": "negative",
        "meta_label": "original",
        "confidence": "0.6",
    }


def test_labels_file_describes_the_dataset(tmp_path: Path) -> None:
    paths = export_splits(sample(), tmp_path)
    info = json.loads(paths["labels"].read_text(encoding="utf-8"))
    assert info == {
        "name": "demo",
        "source": "unit test",
        "labels": ["negative", "positive"],
        "sizes": {"train": 2, "validation": 1, "test": 1},
    }


def test_no_temporary_files_are_left_and_export_overwrites(tmp_path: Path) -> None:
    export_splits(sample(), tmp_path)
    export_splits(sample(), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "labels.json",
        "test.jsonl",
        "train.jsonl",
        "validation.jsonl",
    ]
