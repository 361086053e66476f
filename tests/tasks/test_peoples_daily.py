"""The built-in ``peoples-daily-ner``: tag mapping, brackets, name merging, the fixed split, CLI listing."""

from __future__ import annotations

import json

import pytest

from tuneforge.data.builtin.peoples_daily import LABELS, parse_line, to_example
from tuneforge.tasks.token_classification.files import read_token_examples


def test_tags_mapped_and_surname_given_name_merged():
    line = "中共中央/nt  总书记/n  、/w  国家/n  主席/n  江/nr  泽民/nr  在/p  北京/ns  。/w"
    assert parse_line(line) == [("中共中央", "ORG"), ("总书记", None), ("、", None), ("国家", None),
                                ("主席", None), ("江泽民", "PER"), ("在", None), ("北京", "LOC"),
                                ("。", None)]


def test_brackets_make_one_entity_of_the_outer_tag():
    line = ("[中央/n  人民/n  广播/vn  电台/n]nt  记者/n  [香港/ns  特别/a  行政区/n]ns  "
            "李/nr  鹏/nr  、/w  朱/nr  镕基/nr")
    assert parse_line(line) == [("中央人民广播电台", "ORG"), ("记者", None), ("香港特别行政区", "LOC"),
                                ("李鹏", "PER"), ("、", None), ("朱镕基", "PER")]


def test_characters_get_bio_tags():
    example = to_example([("江泽民", "PER"), ("在", None), ("北京", "LOC")])
    assert example.words == ("江", "泽", "民", "在", "北", "京")
    assert example.tags == ("B-PER", "I-PER", "I-PER", "O", "B-LOC", "I-LOC")
    assert example.offsets[4] == (4, 5)


@pytest.fixture(scope="module")
def splits():
    from tuneforge.data import load_builtin

    return load_builtin("peoples-daily-ner")


def test_fixed_disjoint_split_of_the_corpus(splits):
    from tuneforge.data import load_builtin

    assert (len(splits.validation), len(splits.test)) == (1000, 2000) and len(splits.train) > 15000
    assert splits.labels == list(LABELS)
    texts = [{e.text for e in getattr(splits, name)} for name in ("train", "validation", "test")]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
    again = load_builtin("peoples-daily-ner", seed=7)
    assert [e.text for e in again.test[:50]] == [e.text for e in splits.test[:50]]
    tags = {t for e in splits.train for t in e.tags}
    assert tags == set(LABELS)
    assert any("江泽民" in e.text and e.tags[e.text.index("江泽民")] == "B-PER" for e in splits.train + splits.test)


def test_cli_lists_and_exports_it(splits, tmp_path, monkeypatch, capsys):
    import sys

    from tuneforge.cli.main import main

    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setattr(sys, "argv", ["tuneforge", "datasets", "list"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code in (0, None) and "peoples-daily-ner" in capsys.readouterr().out
    monkeypatch.setattr(sys, "argv", ["tuneforge", "datasets", "export", "peoples-daily-ner", str(tmp_path)])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code in (0, None)
    first = json.loads((tmp_path / "test.jsonl").read_text(encoding="utf-8").split("\n")[0])
    assert set(first) == {"text", "tokens", "tags"}
    back, warnings = read_token_examples(tmp_path / "validation.jsonl")
    assert warnings == [] and [e.tags for e in back] == [e.tags for e in splits.validation]
