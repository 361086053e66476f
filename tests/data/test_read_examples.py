"""read_examples: every format round-trips, and every bad input names the file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneforge.data import Example, read_examples
from tuneforge.errors import TuneforgeError


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def error_of(path: Path, **options: object) -> str:
    with pytest.raises(TuneforgeError) as caught:
        read_examples(path, **options)  # type: ignore[arg-type]
    return str(caught.value)


# --- formats that must read back the same examples ------------------------------------------

EXPECTED = [
    Example(text="good film", label="1", meta={"source": "imdb"}),
    Example(text="dull, long film", label="0", meta={"source": "sst"}),
]


def test_jsonl_int_labels_become_strings_and_extra_fields_go_to_meta(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "train.jsonl",
        '{"text": " good film ", "label": 1, "source": "imdb"}\n\n'
        '{"text": "dull, long film", "label": 0, "source": "sst"}\n',
    )
    examples = read_examples(path)
    assert examples == EXPECTED
    assert [e.meta for e in examples] == [e.meta for e in EXPECTED]


def test_csv_and_tsv_read_the_same_examples_as_jsonl(tmp_path: Path) -> None:
    csv_path = write(
        tmp_path,
        "train.csv",
        '\ufefftext,label,source\ngood film,1,imdb\n"dull, long film",0,sst\n',
    )
    tsv_path = write(
        tmp_path,
        "train.tsv",
        "text\tlabel\tsource\r\ngood film\t1\timdb\r\ndull, long film\t0\tsst\r\n",
    )
    for path in (csv_path, tsv_path):
        examples = read_examples(path)
        assert examples == EXPECTED
        assert [e.meta for e in examples] == [e.meta for e in EXPECTED]


def test_json_list_and_json_lines_in_a_json_file(tmp_path: Path) -> None:
    records = [
        {"text": "good film", "label": 1, "source": "imdb"},
        {"text": "dull, long film", "label": 0.0, "source": "sst"},
    ]
    as_list = write(tmp_path, "list.json", json.dumps(records, indent=2))
    as_lines = write(tmp_path, "lines.json", "\n".join(json.dumps(r) for r in records))
    assert read_examples(as_list) == EXPECTED
    assert read_examples(as_lines) == EXPECTED


def test_text_pair_and_custom_columns(tmp_path: Path) -> None:
    path = write(
        tmp_path, "nli.csv", "premise,hypothesis,gold\nA man sleeps.,A person rests.,entailment\n"
    )
    (example,) = read_examples(
        path, text_column="premise", text_pair_column="hypothesis", label_column="gold"
    )
    assert example == Example(text="A man sleeps.", text_pair="A person rests.", label="entailment")


def test_unlabelled_file_when_labels_are_not_required(tmp_path: Path) -> None:
    path = write(tmp_path, "predict.jsonl", '{"text": "a"}\n{"text": "b", "label": ""}\n')
    assert read_examples(path, require_label=False) == [Example("a"), Example("b")]


def test_tsv_keeps_double_quotes_literally(tmp_path: Path) -> None:
    # GLUE-style TSV: an unbalanced quote must not swallow the following lines.
    path = write(tmp_path, "train.tsv", "text\tlabel\n\" the emperor 's new clothes\t1\nfine\t0\n")
    assert [e.text for e in read_examples(path)] == ["\" the emperor 's new clothes", "fine"]


def test_csv_multiline_field_keeps_physical_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, "train.csv", 'text,label\n"two\nlines",1\nok,1\n,0\n')
    message = error_of(path)
    assert 'train.csv line 5: empty text in "text"' in message


# --- bad inputs --------------------------------------------------------------------------------


def test_malformed_json_line(tmp_path: Path) -> None:
    path = write(
        tmp_path, "train.jsonl", '{"text": "a", "label": "x"}\n{"text": "b" "label": "y"}\n'
    )
    message = error_of(path)
    assert "train.jsonl line 2: not valid JSON (Expecting ',' delimiter at column 14)" in message
    assert 'Each line must be one JSON object such as {"text": "...", "label": "..."}' in message


def test_json_value_that_is_not_an_object(tmp_path: Path) -> None:
    path = write(tmp_path, "train.jsonl", '{"text": "a", "label": "x"}\n"b"\n')
    assert 'train.jsonl line 2: expected a JSON object, got a string ("b")' in error_of(path)


def test_json_list_item_errors_point_at_their_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "train.json",
        '[\n  {"text": "a", "label": "x"},\n  {"text": "", "label": "y"}\n]\n',
    )
    assert 'train.json line 3: empty text in "text"' in error_of(path)
    broken = write(
        tmp_path,
        "broken.json",
        '[\n  {"text": "a", "label": "x"},\n  {"text": "b", "label": }\n]\n',
    )
    assert "broken.json line 3: not valid JSON" in error_of(broken)


def test_json_file_holding_one_object_names_the_list_inside(tmp_path: Path) -> None:
    path = write(
        tmp_path, "train.json", json.dumps({"data": [{"text": "a", "label": "x"}]}, indent=2)
    )
    message = error_of(path)
    assert "train.json line 1: the file holds one JSON object" in message
    assert 'under "data"' in message


def test_missing_text_field_suggests_the_closest_name(tmp_path: Path) -> None:
    path = write(
        tmp_path, "train.jsonl", '{"txt": "a", "label": "x"}\n{"txt": "b", "label": "y"}\n'
    )
    message = error_of(path)
    assert 'train.jsonl lines 1, 2: no field "text" (the objects have: label, txt)' in message
    assert 'Did you mean "txt"? Rename it to "text" or set data.text_column=txt (in the config or on the command ' \
        'line; text_column="txt" when calling read_examples).' in message  # said only text_column="txt"


def test_a_field_missing_from_many_records_is_one_problem_with_the_count(tmp_path: Path) -> None:
    lines = ['{"sentence": "a", "label": "x"}'] * 5000
    message = error_of(write(tmp_path, "train.jsonl", "\n".join(lines) + "\n"))
    assert "1 problem(s)" in message
    assert (
        'train.jsonl lines 1, 2, 3, 4, 5 and 4,995 more (5,000 lines): no field "text" (the objects '
        'have: label, sentence). Did you mean "sentence"?' in message
    )


def test_csv_missing_column_is_reported_once_on_the_header(tmp_path: Path) -> None:
    path = write(tmp_path, "train.csv", "sentence,sentiment\na,pos\nb,neg\n")
    message = error_of(path)
    assert 'train.csv line 1: no column "text" (the header has: sentence, sentiment)' in message
    assert 'text_column="sentence"' in message
    assert 'no column "label"' in message and 'label_column="sentiment"' in message
    assert message.count("no column") == 2


def test_csv_row_with_a_missing_field(tmp_path: Path) -> None:
    path = write(tmp_path, "train.csv", "text,label\ngood,1\nbad film\n")
    message = error_of(path)
    assert "train.csv line 3: 1 field but the header has 2 (text, label)" in message
    assert "double quotes" in message


def test_empty_text_and_empty_label(tmp_path: Path) -> None:
    path = write(tmp_path, "train.csv", "text,label\n  ,1\ngood,\n")
    message = error_of(path)
    assert 'train.csv line 2: empty text in "text"' in message
    assert 'train.csv line 3: empty label in "label"' in message


def test_missing_label_field(tmp_path: Path) -> None:
    path = write(tmp_path, "train.jsonl", '{"text": "a", "label": "x"}\n{"text": "b"}\n')
    assert 'train.jsonl line 2: no field "label"' in error_of(path)


def test_missing_text_pair_column(tmp_path: Path) -> None:
    path = write(tmp_path, "train.csv", "text,label\na,x\n")
    assert 'train.csv line 1: no column "hypothesis"' in error_of(
        path, text_pair_column="hypothesis"
    )


def test_every_problem_is_reported_at_once_and_capped(tmp_path: Path) -> None:
    lines = ['{"text": "", "label": "x"}'] * 14 + ["not json", '{"text": "a"}']
    path = write(tmp_path, "train.jsonl", "\n".join(lines) + "\n")
    message = error_of(path)
    assert "16 problem(s)" in message
    assert (
        "train.jsonl line 1: empty text" in message and "train.jsonl line 10: empty text" in message
    )
    assert "... and 6 more" in message


def test_unknown_suffix_lists_the_supported_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "train.txt", "good\n")
    message = error_of(path)
    assert 'train.txt: unsupported file type ".txt"' in message
    assert ".jsonl, .json, .csv, .tsv" in message


def test_missing_file_gives_the_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    message = error_of(Path("data/train.jsonl"))
    assert "data/train.jsonl: file not found" in message
    assert str(tmp_path / "data" / "train.jsonl") in message


@pytest.mark.parametrize(
    ("name", "content", "why"),
    [
        ("train.jsonl", "", "the file is empty"),
        ("train.jsonl", "\n  \n", "the file is empty"),
        ("train.json", "[]", "the file holds no JSON objects"),
        ("train.csv", "text,label\n", "the file has a header row but no data rows"),
    ],
)
def test_file_without_examples(tmp_path: Path, name: str, content: str, why: str) -> None:
    message = error_of(write(tmp_path, name, content))
    assert f"{name}: no examples ({why}" in message


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, "train.csv", b"text,label\n" + "caf\xe9,1\n".encode("latin-1"))
    assert "train.csv line 2: not UTF-8" in error_of(path)


def test_text_that_is_a_list(tmp_path: Path) -> None:
    path = write(tmp_path, "train.jsonl", '{"text": ["a"], "label": "x"}\n')
    assert 'train.jsonl line 1: "text" is a list; it must be a string' in error_of(path)


def test_semicolon_separated_csv_names_the_separator(tmp_path: Path) -> None:
    path = write(tmp_path, "train.csv", "text;label\ngood;1\n")
    message = error_of(path)
    assert "train.csv line 1: the header is one column ('text;label')" in message
    assert "separated by ';'" in message


def test_semicolon_separated_csv_is_one_problem_not_a_column_per_row(tmp_path: Path) -> None:
    # The missing "text"/"label" columns and the rows with a comma in their text only repeat that mistake
    # (and suggested text_column="text;label").
    path = write(tmp_path, "train.csv", "text;label\ngood, really;1\nbad;0\nfine, fine, fine;1\n")
    message = error_of(path)
    assert "1 problem(s)" in message and "separated by ';'" in message
    assert "text_column" not in message


@pytest.mark.parametrize("indent", [None, 2])
def test_json_list_saved_as_jsonl_says_rename_it(tmp_path: Path, indent: int | None) -> None:
    rows = [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}]
    path = write(tmp_path, "train.jsonl", json.dumps(rows, indent=indent) + "\n")
    message = error_of(path)
    assert "1 problem(s)" in message  # pretty-printed: was one "not valid JSON" per line
    assert "train.jsonl line 1: the file is one JSON list" in message and "Rename it to .json" in message


def test_json_boolean_labels_read_as_the_file_writes_them_and_csv_cells_keep_their_text(
    tmp_path: Path,
) -> None:
    jsonl = write(
        tmp_path,
        "train.jsonl",
        '{"text": "a", "label": true}\n{"text": "b", "label": false}\n{"text": "c", "label": "true"}\n',
    )
    assert [e.label for e in read_examples(jsonl)] == ["true", "false", "true"]  # one class "true"
    as_list = write(tmp_path, "train.json", '[{"text": "a", "label": true}]')
    assert [e.label for e in read_examples(as_list)] == ["true"]
    csv_path = write(tmp_path, "train.csv", "text,label\na,True\nb,TRUE\nc,half-true\n")
    assert [e.label for e in read_examples(csv_path)] == ["True", "TRUE", "half-true"]


def test_json_labels_mixing_booleans_and_numbers_are_refused(tmp_path: Path) -> None:
    # true/false next to 1/0 trained as four classes "true", "false", "1", "0" without a word
    lines = ['{"text": "a", "label": true}', '{"text": "b", "label": 0}'] * 4
    lines += ['{"text": "c", "label": "maybe"}', '{"text": "d", "label": 1.0}']
    message = error_of(write(tmp_path, "train.jsonl", "\n".join(lines) + "\n"))
    assert "1 problem(s)" in message
    assert (
        'train.jsonl lines 1, 3, 5, 7: "label" is a JSON boolean (true), but on lines 2, 4, 6, 8, 10 '
        "it is a number (1/0). Read as labels these are 3 different classes (0, 1, true)"
    ) in message
    assert "write the labels one way (all true/false, or all 1/0)" in message
    # booleans next to strings are a label set ("maybe"), and so are numbers next to strings
    fine = ['{"text": "a", "label": true}', '{"text": "c", "label": "maybe"}']
    assert [e.label for e in read_examples(write(tmp_path, "ok.jsonl", "\n".join(fine)))] == [
        "true",
        "maybe",
    ]
