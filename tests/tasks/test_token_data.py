"""Token classification data: words and offsets, the readers and BIO checks, subword alignment."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tuneforge.errors import TuneforgeError
from tuneforge.tasks.token_classification.bio import Span, label_list, repair, spans, tag_problem
from tuneforge.tasks.token_classification.encoding import IGNORE, align, encode_tokens, word_tags
from tuneforge.tasks.token_classification.files import read_token_examples
from tuneforge.tasks.token_classification.records import TokenExample
from tuneforge.tasks.token_classification.words import from_text, join_words, split_words

sys.path.insert(0, str(Path(__file__).parent))
from tiny_ner import build_tiny_ner_bert  # noqa: E402

LABELS = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(build_tiny_ner_bert(tmp_path_factory.mktemp("ner-bert")))


def test_words_split_cjk_characters_letter_runs_and_punctuation():
    assert split_words("Mary's 2 cats, 王小明在北京!") == [
        ("Mary", 0, 4), ("'", 4, 5), ("s", 5, 6), ("2", 7, 8), ("cats", 9, 13), (",", 13, 14), ("王", 15, 16),
        ("小", 16, 17), ("明", 17, 18), ("在", 18, 19), ("北", 19, 20), ("京", 20, 21), ("!", 21, 22)]


def test_join_words_puts_no_space_between_chinese_characters():
    text, offsets = join_words(["王", "小", "明", "visited", "new", "york", "。"])
    assert text == "王小明 visited new york 。"
    assert [text[s:e] for s, e in offsets] == ["王", "小", "明", "visited", "new", "york", "。"]


def test_bio_checks_and_repairs():
    assert tag_problem("B-PER") is None and tag_problem("O") is None
    assert "not a BIO tag" in tag_problem("PER")
    assert "BIOES" in tag_problem("S-PER")
    assert "no entity type" in tag_problem("B")
    assert repair(["I-PER", "I-PER", "O", "I-LOC", "B-ORG", "I-LOC"]) == (
        ["B-PER", "I-PER", "O", "B-LOC", "B-ORG", "B-LOC"], [0, 3, 5])
    assert spans(["B-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG"]) == [
        Span("PER", 0, 2), Span("LOC", 3, 4), Span("LOC", 4, 5), Span("ORG", 5, 6)]
    assert label_list([["O", "B-PER"], ["B-LOC", "I-LOC"]]) == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def _write(path: Path, lines: list) -> Path:
    path.write_text("".join((json.dumps(r, ensure_ascii=False) if not isinstance(r, str) else r) + "\n"
                            for r in lines), encoding="utf-8")
    return path


def test_jsonl_tokens_tags_and_text_entities(tmp_path):
    path = _write(tmp_path / "a.jsonl", [
        {"tokens": ["John", "lives", "in", "New", "York"], "tags": ["B-PER", "O", "O", "B-LOC", "I-LOC"]},
        {"text": "我在北京。", "entities": [{"start": 2, "end": 4, "label": "LOC"}]},
        {"text": "Ann  met Bob!", "tokens": ["Ann", "met", "Bob", "!"], "tags": ["B-PER", "O", "B-PER", "O"]},
    ])
    examples, warnings = read_token_examples(path)
    assert warnings == []
    first, second, third = examples
    assert first.text == "John lives in New York" and first.offsets[3] == (14, 17)
    assert second.words == ("我", "在", "北", "京", "。") and second.tags == ("O", "O", "B-LOC", "I-LOC", "O")
    assert third.offsets == ((0, 3), (5, 8), (9, 12), (12, 13))  # located in the given text, double space kept
    for e in examples:
        assert all(e.text[s:t] == w for w, (s, t) in zip(e.words, e.offsets))


def test_conll_file_with_docstart_and_stray_i_tag_fixed_with_a_warning(tmp_path):
    path = tmp_path / "a.conll"
    path.write_text("-DOCSTART- O\n\nEU NNP I-ORG\nrejects VBZ O\nGerman JJ B-MISC\n\nPeter B-PER\nBlackburn I-PER\n",
                    encoding="utf-8")
    examples, warnings = read_token_examples(path)
    assert [e.words for e in examples] == [("EU", "rejects", "German"), ("Peter", "Blackburn")]
    assert examples[0].tags == ("B-ORG", "O", "B-MISC")
    assert len(warnings) == 1 and "a.conll line 3: I-ORG read as B-ORG" in warnings[0]


def test_bad_tags_are_reported_with_file_and_line_all_at_once(tmp_path):
    path = _write(tmp_path / "bad.jsonl", [
        {"tokens": ["a", "b"], "tags": ["O", "PER"]},
        {"tokens": ["a", "b"], "tags": ["O"]},
        {"text": "abc def", "entities": [{"start": 1, "end": 3, "label": "X"}]},
        "{not json",
        {"words": ["a"]},
    ])
    with pytest.raises(TuneforgeError) as info:
        read_token_examples(path)
    message = str(info.value)
    assert "5 problem(s)" in message
    assert 'bad.jsonl line 1: tag "PER" is not a BIO tag' in message
    assert "bad.jsonl line 2: 2 tokens but 1 tags" in message
    assert "bad.jsonl line 3: entity 'X' at 1:3" in message and "word boundaries" in message
    assert "bad.jsonl line 4: not valid JSON" in message
    assert 'bad.jsonl line 5: no "tokens" or "text" field (1 of 4 records; they have: words)' in message
    assert 'rename "words" to "tokens".' in message


def test_an_empty_text_sentence_is_refused_like_empty_tokens(tmp_path):
    # {"tokens": []} was refused but {"text": "  ", "entities": []} trained as a sentence without words
    path = _write(tmp_path / "e.jsonl", [{"tokens": ["Ann"], "tags": ["B-PER"]}, {"text": "  ", "entities": []},
                                         {"text": "", "entities": []}])
    with pytest.raises(TuneforgeError) as info:
        read_token_examples(path)
    assert 'e.jsonl lines 2, 3: "text" holds no words' in str(info.value)
    # texts to tag (no entities asked for) may be empty: they get no entities
    examples, _ = read_token_examples(_write(tmp_path / "p.jsonl", [{"text": " "}]), require_tags=False)
    assert examples[0].words == ()


def _ner_data(tmp_path, train_rows, **data):
    from types import SimpleNamespace

    data = {"dataset": None, "validation": None, "test": None, "validation_fraction": 0.1, "max_train_samples": None,
            "train": _write(tmp_path / "train.jsonl", train_rows), **data}
    return SimpleNamespace(**data)


def test_a_type_only_in_validation_or_test_names_the_file_the_sentence_and_the_fix(tmp_path):
    import random

    from tuneforge.tasks.token_classification.data import load_splits

    rows = [{"tokens": ["Ann", "met", f"w{i}"], "tags": ["B-PER", "O", "O"]} for i in range(19)]
    # the one MISC sentence lands in the held-out validation slice (the seeded shuffle's first index)
    order = list(range(20))
    random.Random(42).shuffle(order)
    rows.insert(order[0], {"tokens": ["Acme", "Corp"], "tags": ["B-MISC", "I-MISC"]})
    with pytest.raises(TuneforgeError) as info:
        load_splits(_ner_data(tmp_path, rows), seed=42)
    message = " ".join(str(info.value).split())
    assert f"held out of data.train {tmp_path / 'train.jsonl'} (validation_fraction 0.1)" in message
    assert "entity type(s) MISC" in message and "'Acme Corp'" in message and "give data.validation" in message
    test = _write(tmp_path / "test.jsonl", [{"tokens": ["Oslo"], "tags": ["B-LOC"]}])
    with pytest.raises(TuneforgeError) as info:
        load_splits(_ner_data(tmp_path, rows[:1] * 5, test=test), seed=42)
    message = " ".join(str(info.value).split())
    assert f"data.test {test}: tags entity type(s) LOC" in message and "'Oslo'" in message
    assert f"retag or remove them in {test}" in message


def test_conll_bad_tag_and_one_column(tmp_path):
    path = tmp_path / "x.bio"
    path.write_text("John B-PER\nlives\nthere E-LOC\n", encoding="utf-8")
    with pytest.raises(TuneforgeError) as info:
        read_token_examples(path)
    assert "x.bio line 2: 'lives' has one column" in str(info.value)
    assert "x.bio line 3: tag \"E-LOC\" is BIOES" in str(info.value)


def test_unknown_suffix_is_an_error(tmp_path):
    (tmp_path / "a.csv").write_text("x\n", encoding="utf-8")
    with pytest.raises(TuneforgeError, match="token classification reads"):
        read_token_examples(tmp_path / "a.csv")


def test_first_subword_labelled_others_ignored(tokenizer):
    # "johansson" -> johan ##sson, "berg" -> be ##rg (hand-checked below)
    example = TokenExample("mary johansson met peter berg", ("mary", "johansson", "met", "peter", "berg"),
                           ((0, 4), (5, 14), (15, 18), (19, 24), (25, 29)), ("B-PER", "I-PER", "O", "B-PER", "I-PER"))
    enc = encode_tokens([example], tokenizer, LABELS, 32)
    pieces = tokenizer.convert_ids_to_tokens(enc.input_ids[0])
    assert pieces == ["[CLS]", "mary", "johan", "##sson", "met", "peter", "be", "##rg", "[SEP]"]
    b, i, o = LABELS.index("B-PER"), LABELS.index("I-PER"), LABELS.index("O")
    assert enc.labels[0] == [IGNORE, b, i, IGNORE, o, b, i, IGNORE, IGNORE]
    assert enc.word_subwords == [[1, 2, 4, 5, 6]]


def test_alignment_on_chinese_characters_and_truncation(tokenizer):
    example = from_text("他在北京说", ["O", "O", "B-LOC", "I-LOC", "O"])
    enc = encode_tokens([example], tokenizer, LABELS, 4)  # [CLS] 他 在 [SEP]: the last three are cut off
    assert enc.word_subwords == [[1, 2, None, None, None]]
    assert enc.labels[0] == [IGNORE, 0, 0, IGNORE]


def test_a_subword_covering_several_words_continues_its_entity():
    # Words "19" "98" inside one subword [3, 7) of "in 1998": the second word points at it as -k - 1.
    example = TokenExample("in 1998", ("in", "19", "98"), ((0, 2), (3, 5), (5, 7)))
    offsets = [(0, 0), (0, 2), (3, 7), (0, 0)]
    assert align(example, offsets) == [1, 2, -3]
    probs = np.zeros((4, 3), dtype=np.float32)
    probs[1, 0], probs[2, 1] = 1.0, 0.9
    assert word_tags([1, 2, -3], probs, ["O", "B-DATE", "I-DATE"]) == (["O", "B-DATE", "I-DATE"],
                                                                        [1.0, pytest.approx(0.9), pytest.approx(0.9)])


def test_byte_level_offsets_with_a_leading_space_still_align():
    example = TokenExample("go to oslo", ("go", "to", "oslo"), ((0, 2), (3, 5), (6, 10)))
    assert align(example, [(0, 2), (2, 5), (5, 8), (8, 10)]) == [0, 1, 2]  # " to", " os" include the space


def test_entity_spans_have_character_offsets_and_mean_scores_and_a_stray_i_begins_an_entity():
    from tuneforge.tasks.token_classification.inference import entity_spans

    example = from_text("王小明去了New York!")  # words: 王 小 明 去 了 New York !
    tags = ["B-PER", "I-PER", "I-PER", "O", "O", "I-LOC", "I-LOC", "O"]  # the LOC has no B-
    scores = [0.9, 0.6, 0.9, 1.0, 1.0, 0.5, 0.7, 1.0]
    assert entity_spans(example, tags, scores) == [
        {"start": 0, "end": 3, "text": "王小明", "type": "PER", "score": pytest.approx(0.8)},
        {"start": 5, "end": 13, "text": "New York", "type": "LOC", "score": pytest.approx(0.6)}]
    # Two entities of one type side by side stay two; an I- of another type starts a new one.
    assert entity_spans(example, ["B-PER", "B-PER", "I-LOC", "O", "O", "O", "O", "O"], scores) == [
        {"start": 0, "end": 1, "text": "王", "type": "PER", "score": pytest.approx(0.9)},
        {"start": 1, "end": 2, "text": "小", "type": "PER", "score": pytest.approx(0.6)},
        {"start": 2, "end": 3, "text": "明", "type": "LOC", "score": pytest.approx(0.9)}]


def test_the_same_bad_tag_on_many_lines_is_one_problem_with_the_count_and_the_first_lines(tmp_path):
    # 5,000 lines with "PER" for "B-PER" printed 5,000 near-identical messages
    rows = [{"tokens": ["Ann", "met", "Bob"], "tags": ["PER", "O", "PER"]}] * 5000
    rows[3] = {"tokens": ["Ann"], "tags": ["S-PER"]}
    with pytest.raises(TuneforgeError) as info:
        read_token_examples(_write(tmp_path / "many.jsonl", rows))
    message = str(info.value)
    assert "2 problem(s)" in message and message.count('tag "PER"') == 1
    assert 'many.jsonl lines 1, 2, 3, 5, 6 and 4,994 more (4,999 lines): tag "PER" is not a BIO tag' in message
    assert 'many.jsonl line 4: tag "S-PER" is BIOES' in message
    conll = tmp_path / "many.conll"
    conll.write_text("".join(f"w{i} LOCATION\n" for i in range(7)), encoding="utf-8")
    with pytest.raises(TuneforgeError) as info:
        read_token_examples(conll)
    assert 'many.conll lines 1, 2, 3, 4, 5 and 2 more (7 lines): tag "LOCATION"' in str(info.value)


def test_items_of_a_json_list_are_reported_on_their_own_lines(tmp_path):
    path = tmp_path / "list.json"  # every item was "line 1"
    path.write_text(json.dumps([{"tokens": ["a"], "tags": ["O"]}, {"tokens": ["b"], "tags": ["PER"]}], indent=1),
                    encoding="utf-8")
    with pytest.raises(TuneforgeError) as info:
        read_token_examples(path)
    assert 'list.json line 10: tag "PER"' in str(info.value)


def test_misnamed_fields_are_one_problem_naming_the_fields_the_file_has_and_the_renames(tmp_path):
    # {"sentence", "labels"} records gave one "needs tokens and tags" message per line
    path = _write(tmp_path / "hf.jsonl", [{"sentence": "Ann met Bob", "labels": []}] * 5000)
    with pytest.raises(TuneforgeError) as info:
        read_token_examples(path)
    message = " ".join(str(info.value).split())
    assert "1 problem(s)" in message
    assert ('hf.jsonl lines 1, 2, 3, 4, 5 and 4,995 more (5,000 lines): no "tokens" or "text" field (every record; '
            "they have: labels, sentence)") in message
    assert "data.text_column and data.label_column are for text classification" in message
    assert message.endswith('rename "sentence" to "text" and "labels" to "entities".')
    # Hugging Face's conll2003 names the tags "ner_tags": said once, not once per sentence
    rows = [{"id": i, "tokens": ["Ann"], "ner_tags": ["B-PER"]} for i in range(30)] + [{"tokens": ["Bob"],
                                                                                        "tags": ["B-PER"]}]
    with pytest.raises(TuneforgeError) as info:
        read_token_examples(_write(tmp_path / "conll2003.jsonl", rows))
    message = str(info.value)
    assert "1 problem(s)" in message
    assert ('conll2003.jsonl lines 1, 2, 3, 4, 5 and 25 more (30 lines): "tokens" without "tags" (30 of 31 '
            'records; they have: id, ner_tags, tokens); give one BIO tag per token under "tags": rename "ner_tags" '
            'to "tags".') in message
    with pytest.raises(TuneforgeError) as info:
        read_token_examples(_write(tmp_path / "spans.jsonl", [{"text": "Ann", "spans": []}] * 3))
    assert ('spans.jsonl lines 1, 2, 3: "text" without "entities" (every record; they have: spans, text)'
            in str(info.value)) and 'rename "spans" to "entities"' in str(info.value)


@pytest.mark.parametrize(("value", "shown", "fix"), [
    ("2", '"2" (a string)', 'write "start": 2'),  # int("2") read it as 2 without a word
    (2.0, "2.0 (a number)", 'write "start": 2'),
    (2.5, "2.5 (a number)", 'write "start" as a whole number'),  # int(2.5) cut it to 2
    (True, "true (a boolean)", 'write "start" as a whole number'),  # int(True) read it as 1
])
def test_a_span_offset_that_is_not_a_json_integer_is_refused_with_the_value_and_the_fix(tmp_path, value, shown, fix):
    good = {"text": "in New York", "entities": [{"start": 3, "end": 11, "label": "LOC"}]}
    bad = {"text": "go to Oslo", "entities": [{"start": value, "end": 5, "label": "X"},
                                              {"start": 6, "end": 10, "label": "LOC"}]}
    path = _write(tmp_path / "spans.jsonl", [good, bad])
    with pytest.raises(TuneforgeError) as info:
        read_token_examples(path)
    message = str(info.value)
    assert "1 problem(s)" in message
    assert (f'spans.jsonl line 2: entity 1: "start" is {shown}; it must be a JSON integer, the character offset into '
            f'"text": {fix}') in message


def test_every_bad_entity_field_of_a_line_is_named(tmp_path):
    path = _write(tmp_path / "spans.jsonl", [{"text": "Ann", "entities": [{"start": 0, "end": "3", "label": 7}, "PER",
                                                                          {"end": 3, "label": ""}]},
                                             {"text": "Ann", "entities": {"start": 0, "end": 3, "label": "PER"}}])
    with pytest.raises(TuneforgeError) as info:
        read_token_examples(path)
    message = str(info.value)
    assert 'spans.jsonl line 1: entity 1: "end" is "3" (a string)' in message
    assert 'spans.jsonl line 1: entity 1: "label" is 7 (a number); it must be the entity type as a string' in message
    assert 'spans.jsonl line 1: entity 2 is "PER" (a string); each entity is an object such as {"start": 0' in message
    assert 'spans.jsonl line 1: entity 3 has no "start" (it has: end, label)' in message
    assert 'spans.jsonl line 1: entity 3: "label" is empty' in message
    assert 'spans.jsonl line 2: "entities" is {"start": 0, "end": 3, "label": "PER"} (an object); it must be a list' \
        in message
