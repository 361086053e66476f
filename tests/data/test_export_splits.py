"""export_splits writes JSON lines that read_examples reads back unchanged."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

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


def test_check_export_folder_refuses_a_file_and_files_it_would_replace(tmp_path: Path) -> None:
    # `datasets export NAME DIR` gave a FileExistsError traceback for a file and silently replaced a
    # train.jsonl already in DIR (the user's own data)
    from tuneforge.data.export import check_export_folder
    from tuneforge.errors import TuneforgeError

    (tmp_path / "afile").write_text("x", encoding="utf-8")
    for target, said in [(tmp_path / "afile", "is a file"), (tmp_path / "afile" / "sub", "which is a file")]:
        with pytest.raises(TuneforgeError, match=said):
            check_export_folder(target)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "train.jsonl").write_text("keep\n", encoding="utf-8")
    with pytest.raises(TuneforgeError, match=r"already holds train\.jsonl.*--overwrite"):
        check_export_folder(tmp_path / "mine")
    check_export_folder(tmp_path / "mine", overwrite=True)
    check_export_folder(tmp_path / "new" / "folder")


def test_exported_files_are_readable_by_others_as_plain_new_files(tmp_path: Path) -> None:
    # mkstemp's 0600 made the exported splits unreadable to anyone but their writer
    paths = export_splits(sample(), tmp_path)
    mask = os.umask(0o022)
    os.umask(mask)
    assert all(path.stat().st_mode & 0o777 == 0o666 & ~mask for path in paths.values())
