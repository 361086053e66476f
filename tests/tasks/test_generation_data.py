"""Generation's parts on tiny inputs: answer-only label masks (checked by hand), truncation, ROUGE-L against
hand-computed values, perplexity against a manual computation, the pair readers and the support-dialogs set."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

from tuneforge.errors import TuneforgeError
from tuneforge.tasks.generation.chat import IGNORE, ChatFormat, encode_pairs, fit_length
from tuneforge.tasks.generation.files import read_pairs
from tuneforge.tasks.generation.metrics import answer_nll, lcs_length, mean_rouge_l, perplexity, rouge_l, \
    rouge_tokens
from tuneforge.tasks.generation.records import Pair

sys.path.insert(0, str(Path(__file__).parent))
from tiny_gen import build_tiny_lm, build_tokenizer, write_jsonl  # noqa: E402


def ids(tokenizer, words: str) -> list[int]:
    return tokenizer.convert_tokens_to_ids(words.split())


# --- answer-only labels -------------------------------------------------------------------------------------

def test_plain_format_masks_every_prompt_token_and_keeps_the_answer_and_eos():
    tok = build_tokenizer(chat=False)
    chat = ChatFormat(tok)
    assert not chat.uses_template and chat.stop_ids == [tok.eos_token_id]
    enc = encode_pairs([Pair("how are you", "fine thanks")], chat, max_length=64)
    # "<s> Question : how are you Answer :" then " fine thanks" and </s>
    prompt = ids(tok, "<s> Question : how are you Answer :")
    answer = ids(tok, "fine thanks </s>")
    assert enc.input_ids[0] == prompt + answer
    assert enc.labels[0] == [IGNORE] * 8 + answer
    assert "note" in chat.describe() and chat.describe()["format"] == "plain"


def test_chat_template_masks_the_rendered_prompt_and_ends_the_answer_at_its_end_of_turn():
    tok = build_tokenizer(chat=True)
    chat = ChatFormat(tok, system_prompt="be brief .")
    assert chat.uses_template and chat.stop_ids == [tok.eos_token_id]  # the template ends turns with </s>
    enc = encode_pairs([Pair("how are you ?", "fine thanks")], chat, max_length=64)
    # the template writes "<|system|> be brief . </s> <|user|> how are you ? </s> <|assistant|>" (no <s>:
    # a template writes its own special tokens) and then " fine thanks </s> " (the trailing space is cut)
    prompt = ids(tok, "<|system|> be brief . </s> <|user|> how are you ? </s> <|assistant|>")
    assert enc.input_ids[0] == prompt + ids(tok, "fine thanks </s>")
    assert enc.labels[0] == [IGNORE] * len(prompt) + ids(tok, "fine thanks </s>")
    assert chat.prompt_ids(["how are you ?"])[0] == prompt  # generation sees exactly the training prompt


def test_padding_is_ignored_in_a_batch():
    from tuneforge.training.batching import collate

    chat = ChatFormat(build_tokenizer(chat=False))
    enc = encode_pairs([Pair("how are you", "fine"), Pair("how do i fix my wifi ?", "open settings then wifi")],
                       chat, max_length=64)
    batch = collate(enc, [0, 1], pad_id=0)
    short = len(enc.input_ids[0])
    assert batch["labels"][0, short:].eq(IGNORE).all() and batch["attention_mask"][0, short:].eq(0).all()
    assert batch["labels"].ne(IGNORE).sum() == 2 + 5  # the answers and their </s>, nothing else


def test_truncation_cuts_the_prompt_from_the_left_and_keeps_the_answer_start():
    prompt, answer = list(range(10)), list(range(100, 104))
    assert fit_length(prompt, answer, 20) == (prompt, answer)
    assert fit_length(prompt, answer, 8) == ([6, 7, 8, 9], answer)  # the prompt's end survives
    long_answer = list(range(100, 120))
    p, a = fit_length(prompt, long_answer, 8)
    assert a == [100, 101, 102, 103] and p == [6, 7, 8, 9]  # half the budget each, the answer's start kept
    p, a = fit_length([1, 2], long_answer, 8)
    assert p == [1, 2] and a == long_answer[:6]


def test_a_long_prompt_is_truncated_but_its_answer_still_carries_the_loss():
    tok = build_tokenizer(chat=False)
    chat = ChatFormat(tok)
    words = " ".join(["how do i fix my wifi"] * 10)
    enc = encode_pairs([Pair(words, "open settings then wifi")], chat, max_length=16)
    assert len(enc.input_ids[0]) == 16
    assert enc.input_ids[0][-5:] == ids(tok, "open settings then wifi </s>")
    assert enc.input_ids[0][-7:-5] == ids(tok, "Answer :")
    assert [label for label in enc.labels[0] if label != IGNORE] == ids(tok, "open settings then wifi </s>")


# --- ROUGE-L ------------------------------------------------------------------------------------------------

def test_rouge_l_english_words_by_hand():
    # candidate: the cat sat on the mat (6), reference: the cat is on the mat (6); LCS the cat on the mat = 5
    s = rouge_l("The cat sat on the mat.", "the cat is on the mat")
    assert s["precision"] == pytest.approx(5 / 6) and s["recall"] == pytest.approx(5 / 6)
    assert s["f1"] == pytest.approx(5 / 6)
    # candidate: open settings (2), reference: open the settings page (4): LCS 2, P 1, R 0.5, F1 2/3
    assert rouge_l("Open settings!", "open the settings page")["f1"] == pytest.approx(2 / 3)
    assert rouge_l("", "anything")["f1"] == 0.0 and rouge_l("no overlap", "else entirely")["f1"] == 0.0


def test_rouge_l_chinese_characters_by_hand():
    assert rouge_tokens("你好，最近如何?") == ["你", "好", "最", "近", "如", "何"]
    # candidate 我很好谢谢 (5 chars), reference 很好，谢谢你 (5 chars): LCS 很好谢谢 = 4 -> P = R = F1 = 0.8
    assert rouge_l("我很好谢谢", "很好，谢谢你")["f1"] == pytest.approx(0.8)
    # mixed text: words and characters in one sequence
    assert rouge_tokens("Python是一种语言") == ["python", "是", "一", "种", "语", "言"]
    assert mean_rouge_l(["挺好", "the cat"], ["挺好的", "a dog"]) == pytest.approx((2 * 1 * (2 / 3) / (5 / 3)) / 2)


def test_lcs_length():
    assert lcs_length(list("ABCBDAB"), list("BDCABA")) == 4  # the textbook example (CLRS)
    assert lcs_length([], ["a"]) == 0


# --- perplexity -----------------------------------------------------------------------------------------------

def test_answer_nll_matches_a_manual_computation(tmp_path):
    from transformers import AutoModelForCausalLM

    folder = build_tiny_lm(tmp_path / "lm")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    chat = ChatFormat(build_tokenizer(chat=False))
    pairs = [Pair("how are you", "fine thanks"), Pair("how do i fix my wifi ?", "open settings then wifi ."),
             Pair("check", "to check the printer open settings")]
    enc = encode_pairs(pairs, chat, max_length=64)
    nll, count = answer_nll(model, enc, batch_size=2, precision="fp32", device=torch.device("cpu"), pad_id=0)
    manual, n = 0.0, 0
    with torch.no_grad():
        for seq, labels in zip(enc.input_ids, enc.labels):
            logp = torch.log_softmax(model(torch.tensor([seq])).logits[0].double(), -1)  # (T, V)
            for t in range(1, len(seq)):
                if labels[t] != IGNORE:
                    manual -= float(logp[t - 1, labels[t]])
                    n += 1
    assert count == n == 3 + 6 + 7
    assert nll == pytest.approx(manual, rel=1e-5)
    assert perplexity(nll, count) == pytest.approx(math.exp(manual / n), rel=1e-5)


# --- reading pairs --------------------------------------------------------------------------------------------

def test_read_pairs_jsonl_and_csv_with_configured_columns(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"question": "q1", "answer": "a1", "topic": "x"}])
    pairs = read_pairs(path, prompt_column="question", response_column="answer")
    assert pairs == [Pair("q1", "a1")] and pairs[0].meta == {"topic": "x"}
    csv = tmp_path / "p.csv"
    csv.write_text("prompt,response\nhello,hi there\n", encoding="utf-8")
    assert read_pairs(csv) == [Pair("hello", "hi there")]


def test_read_pairs_reports_every_problem_with_file_line_and_field(tmp_path):
    rows = ['{"prompt": "ok", "response": "fine"}', '{"prompt": "only a prompt"}', '{"prompt": "q", "response": ""}',
            '{"prompt": ["a", "list"], "response": "r"}', "{not json"]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(TuneforgeError) as info:
        read_pairs(path)
    message = str(info.value)
    assert f'{path} line 2: no field "response" (1 of 4 records; they have: prompt): a prompt with no answer' in message
    assert f'{path} line 3: empty response in field "response"' in message
    assert f'{path} line 4: field "prompt" (prompt) is a list' in message
    assert f"{path} line 5" in message


def test_read_pairs_missing_column_suggests_the_one_the_file_has(tmp_path):
    csv = tmp_path / "p.csv"
    csv.write_text("question,answer\nhello,hi\n", encoding="utf-8")
    with pytest.raises(TuneforgeError) as info:
        read_pairs(csv)
    assert 'line 1: no column "prompt"' in str(info.value) and 'data.prompt_column: question' in str(info.value)
    assert 'data.response_column: answer' in str(info.value)


def test_read_pairs_names_a_misnamed_field_once_with_the_count_and_the_first_lines(tmp_path):
    # 5,000 records with "question"/"answer" printed two messages per record
    rows = [{"question": f"q{i}", "answer": "a", "id": i} for i in range(5000)]
    rows[2] = {"prompt": "q", "answer": "a"}
    with pytest.raises(TuneforgeError) as info:
        read_pairs(write_jsonl(tmp_path / "qa.jsonl", rows))
    message = str(info.value)
    assert "2 problem(s)" in message and message.count('no field "prompt"') == 1
    assert (f'{tmp_path / "qa.jsonl"} lines 1, 2, 4, 5, 6 and 4,994 more (4,999 lines): no field "prompt" (4,999 of '
            '5,000 records; they have: answer, id, question); did you mean "question"? Rename it, or set '
            "data.prompt_column: question.") in message
    assert ('lines 1, 2, 3, 4, 5 and 4,995 more (5,000 lines): no field "response" (every record; they have: answer, '
            'id, prompt, question); did you mean "answer"? Rename it, or set data.response_column: answer.') in message


# --- the built-in support-dialogs set -------------------------------------------------------------------------

def test_conversation_pairs_drop_non_text_turns():
    from tuneforge.data.builtin.support_dialogs import conversation_pairs

    assert conversation_pairs(["a", "b", "c"]) == ([("a", "b"), ("b", "c")], 0)
    assert conversation_pairs(["a", True, "c", " d  e "]) == ([("c", "d  e")], 2)
    assert conversation_pairs([" a \n b ", "code:\n  x = 1  \n"]) == ([("a b", "code:\n  x = 1")], 0)
    assert conversation_pairs("not a list") == ([], 1)


support = pytest.mark.skipif(__import__("importlib").util.find_spec("chatterbot_corpus") is None,
                             reason="chatterbot-corpus is not installed")


@support
def test_support_dialogs_split_is_fixed_disjoint_by_prompt_and_well_formed():
    from tuneforge.data.builtin import load_builtin
    from tuneforge.data.builtin.support_dialogs import load

    splits = load_builtin("support-dialogs")
    parts = (splits.train, splits.validation, splits.test)
    total = sum(map(len, parts))
    assert 1600 < total < 1900 and len(splits.test) > 0.07 * total and len(splits.validation) > 0.07 * total
    prompts = [{(p.meta["language"], p.prompt) for p in part} for part in parts]
    assert not (prompts[0] & prompts[1] or prompts[0] & prompts[2] or prompts[1] & prompts[2])
    for part in parts:
        assert all(isinstance(p.prompt, str) and p.prompt and p.response and p.prompt == " ".join(p.prompt.split())
                   for p in part)
        assert len({(p.meta["language"], p.prompt, p.response) for p in part}) == len(part)  # no duplicates
    languages = {p.meta["language"] for p in splits.test}
    assert languages == {"en", "zh"}
    fresh = load(("en", "zh"))  # parsed again, not the cached copy: the same split
    assert [(p.prompt, p.response) for p in fresh.test] == [(p.prompt, p.response) for p in splits.test]
    english = load_builtin("support-dialogs-en")
    assert [p for p in splits.test if p.meta["language"] == "en"] == english.test
    assert all(p.meta["language"] == "zh" for p in load_builtin("support-dialogs-zh").train)


@support
def test_datasets_export_writes_prompt_response_records(tmp_path):
    from tuneforge.data import export_splits, load_builtin

    paths = export_splits(load_builtin("support-dialogs-zh"), tmp_path)
    first = json.loads(paths["test"].read_text(encoding="utf-8").splitlines()[0])
    assert set(first) == {"prompt", "response", "language", "category"} and first["language"] == "zh"
    assert len(read_pairs(paths["train"])) == len(load_builtin("support-dialogs-zh").train)  # it reads back


def test_generation_batches_group_similar_lengths_and_only_equal_ones_for_prompt_tuning():
    from tuneforge.tasks.generation.generate import batches

    assert batches([3, 1, 3, 2], 2, same_length=False) == [[1, 3], [0, 2]]
    assert batches([3, 1, 3, 2], 2, same_length=True) == [[1], [3], [0, 2]]
    assert batches([5, 5, 5], 2, same_length=True) == [[0, 1], [2]]
