"""BM25 tokens for English, Chinese and mixed text; the synthetic paraphrases."""

from __future__ import annotations

import random

from tuneforge.apps.assistant.text import is_cjk, synthetic_paraphrase, tokenize


def test_latin_text_is_lower_cased_words_without_punctuation():
    assert tokenize("Where is my Bag?! It's LATE.") == ["where", "is", "my", "bag", "it", "s", "late"]
    assert tokenize("Ｆｕｌｌ-width ＡＢＣ 123") == ["full", "width", "abc", "123"]  # NFKC folds full-width letters
    assert tokenize("café naïve") == ["café", "naïve"]


def test_chinese_is_characters_bigrams_or_both():
    assert tokenize("你好吗", "chars") == ["你", "好", "吗"]
    assert tokenize("你好吗", "bigrams") == ["你好", "好吗"]
    assert tokenize("你好吗", "both") == ["你", "好", "吗", "你好", "好吗"]
    assert tokenize("好", "bigrams") == ["好"]  # a single character is its own token
    assert tokenize("你好，世界", "bigrams") == ["你好", "世界"]  # punctuation splits runs: no bigram across it


def test_mixed_text_keeps_latin_words_whole():
    assert tokenize("我的iPhone坏了", "both") == ["我", "的", "我的", "iphone", "坏", "了", "坏了"]
    assert is_cjk("我的iPhone") and not is_cjk("my iPhone")


def test_synthetic_paraphrase_edits_words_or_characters():
    rng = random.Random(0)
    text, operation = synthetic_paraphrase("how do I reset my password today", rng, 0.3)
    assert operation in ("delete", "swap") and text != "how do I reset my password today"
    assert set(text.split()) <= set("how do I reset my password today".split())
    zh, _ = synthetic_paraphrase("如何修改我的密码", rng, 0.3)
    assert " " not in zh and set(zh) <= set("如何修改我的密码") and zh != "如何修改我的密码"
