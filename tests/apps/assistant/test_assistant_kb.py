"""Knowledge base files (YAML, JSONL, CSV): what they hold, and bad input named by file, line and field."""

from __future__ import annotations

import json

import pytest
from assistant_helpers import KB, write_kb

from tuneforge.apps.assistant.kb import KnowledgeBaseError, chatterbot, groups, hold_out, read_kb
from tuneforge.errors import TuneforgeError


def kb_error(path) -> str:
    with pytest.raises(KnowledgeBaseError) as info:
        read_kb(path)
    assert isinstance(info.value, TuneforgeError)
    return str(info.value)


def test_the_three_formats_read_the_same_entries(tmp_path):
    (tmp_path / "kb.yaml").write_text(
        "- questions: ['How do I reset my password?', I forgot my password]\n"
        "  answer: Use the forgot password link.\n"
        "  category: account\n"
        "- question: Where is my order?\n"
        "  answer: Track it under My orders.\n", encoding="utf-8")
    write_kb(tmp_path / "kb.jsonl", [
        {"questions": ["How do I reset my password?", "I forgot my password"], "answer": "Use the forgot password "
         "link.", "category": "account"},
        {"question": "Where is my order?", "answer": "Track it under My orders."}])
    (tmp_path / "kb.csv").write_text(
        "question,answer,category\n"
        "How do I reset my password?,Use the forgot password link.,account\n"
        "I forgot my password,Use the forgot password link.,account\n"
        "Where is my order?,Track it under My orders.,\n", encoding="utf-8")
    for name in ("kb.yaml", "kb.jsonl", "kb.csv"):
        entries = read_kb(tmp_path / name)
        assert [(e.question, e.answer, e.category) for e in entries] == [
            ("How do I reset my password?", "Use the forgot password link.", "account"),
            ("I forgot my password", "Use the forgot password link.", "account"),
            ("Where is my order?", "Track it under My orders.", "")], name
        assert len(groups(entries)) == 2
        assert len({e.id for e in entries}) == 3


def test_yaml_problems_name_line_and_field_all_at_once(tmp_path):
    path = tmp_path / "faq.yaml"
    path.write_text("- question: Where is my order?\n"      # 1
                    "  answer: Track it.\n"                  # 2
                    "- question: Can I pay by card?\n"       # 3
                    "  anwser: Yes.\n"                       # 4
                    "- question: ''\n"                       # 5
                    "  answer: Nothing.\n", encoding="utf-8")  # 6
    message = kb_error(path)
    assert f"{path} line 3" in message and 'unknown field "anwser"' in message and 'Did you mean "answer"' in message
    assert f"{path} line 5" in message and 'field "question" is missing or empty' in message
    assert "3 problem(s)" in message  # line 3 also lacks its answer


def test_jsonl_problems(tmp_path):
    path = tmp_path / "faq.jsonl"
    path.write_text('{"question": "a?", "answer": "b"}\n{"question": "c?", \n{"question": 3, "answer": "d"}\n'
                    '{"question": "e?", "questions": ["f?"], "answer": "g"}\n', encoding="utf-8")
    message = kb_error(path)
    assert f"{path} line 2: not valid JSON" in message
    assert f'{path} line 3: field "question" must be a text, got int' in message
    assert f'{path} line 4: give "question" (one) or "questions" (a list), not both' in message


def test_csv_problems(tmp_path):
    missing = tmp_path / "missing.csv"
    missing.write_text("question,anwser\nhi,there\n", encoding="utf-8")
    message = kb_error(missing)
    assert f"{missing} line 1" in message and "answer" in message and 'Did you mean "anwser"' in message
    empty = tmp_path / "empty.csv"
    empty.write_text('question,answer\n"a?",b\n"c?",\n"d?","e","f"\n', encoding="utf-8")
    message = kb_error(empty)
    assert f'{empty} line 3: field "answer" is missing or empty' in message
    assert f"{empty} line 4: more values than the header" in message


def test_files_that_cannot_be_a_knowledge_base(tmp_path):
    assert "does not exist" in kb_error(tmp_path / "nope.jsonl")
    (tmp_path / "kb.txt").write_text("hi", encoding="utf-8")
    assert ".yaml, .yml, .jsonl or .csv" in kb_error(tmp_path / "kb.txt")
    (tmp_path / "dup.jsonl").write_text(json.dumps({"id": "x", "question": "a", "answer": "b"}) + "\n" +
                                        json.dumps({"id": "x", "question": "c", "answer": "d"}) + "\n")
    assert "ids must be unique; used twice: x" in kb_error(tmp_path / "dup.jsonl")
    (tmp_path / "none.yaml").write_text("[]\n", encoding="utf-8")
    assert "no question/answer pair" in kb_error(tmp_path / "none.yaml")


def test_hold_out_keeps_one_question_per_paraphrase_group(tmp_path):
    entries = read_kb(write_kb(tmp_path / "kb.jsonl"))
    indexed, held = hold_out(entries, seed=0)
    assert len(held) == 2 and len(indexed) == len(KB) - 2  # the password and the order groups
    assert {e.group for e in held} == {e.group for e in entries if e.id in ("pw-1", "order-1")}
    assert not {e.question for e in held} & {e.question for e in indexed}
    assert {e.group for e in held} <= {e.group for e in indexed}  # every held-out answer is still findable
    assert hold_out(entries, seed=0) == (indexed, held)


def test_builtin_chatterbot_english_and_chinese():
    english, chinese = chatterbot("english"), chatterbot("chinese")
    assert len(english) > 800 and len(chinese) > 400  # distinct question/answer pairs (the files repeat many)
    assert {"tech_support", "greetings"} <= {e.category for e in english}
    assert any("\u4e00" <= c <= "\u9fff" for e in chinese[:20] for c in e.question)
    multi = [g for g in groups(english).values() if len(g) >= 2]
    assert len(multi) >= 10  # real paraphrase groups exist, though few (docs/ASSISTANT.md)
