"""Tokenizer training round trips, and packing of causal LM blocks."""

from __future__ import annotations

import pytest

from tuneforge.pretraining.config import TokenizerConfig
from tuneforge.pretraining.corpora import Document
from tuneforge.pretraining.data import clm_blocks, mlm_examples
from tuneforge.pretraining.packing import pack
from tuneforge.pretraining.tokenizer import train_tokenizer

TEXTS = ["the flight was late again", "我们很喜欢这家酒店的早餐", "great crew and a smooth landing",
         "房间干净，服务很好", "my bag was lost in denver"] * 30


@pytest.mark.parametrize("kind", ["wordpiece", "bpe", "char", "cjk_words"])
def test_tokenizer_round_trip(kind, tmp_path):
    from transformers import AutoTokenizer

    tok = train_tokenizer(TEXTS, TokenizerConfig(kind=kind, vocab_size=300, min_frequency=1))
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    for text in ["the flight was late", "酒店的早餐很好"]:
        ids = tok(text)["input_ids"]
        assert again(text)["input_ids"] == ids
        assert tok.unk_token_id not in ids
        decoded = tok.decode(ids, skip_special_tokens=True)
        assert decoded.replace(" ", "") == text.replace(" ", "")
    if kind != "bpe":
        assert tok.mask_token_id is not None and tok.cls_token_id is not None


def test_char_tokenizer_is_one_token_per_character():
    tok = train_tokenizer(TEXTS, TokenizerConfig(kind="char", vocab_size=500, min_frequency=1))
    tokens = tok.convert_ids_to_tokens(tok("房间干净")["input_ids"])
    assert tokens == ["[CLS]", "房", "间", "干", "净", "[SEP]"]
    # the vocabulary is capped: the most frequent characters are kept
    texts = TEXTS + ["abcdefghijklmnopqrstuvwxyz 0123456789"]
    distinct = {c for t in texts for c in t if not c.isspace()}
    assert len(distinct) + 5 > 50
    small = train_tokenizer(texts, TokenizerConfig(kind="char", vocab_size=50, min_frequency=1))
    assert len({t for t in small.get_vocab() if not t.startswith("##")}) == 50


def test_pack_keeps_every_token_once_in_order():
    docs = [[1, 5, 6, 2], [1, 7, 2], [1, 8, 9, 10, 11, 2]]
    blocks = pack(docs, 4)
    assert [len(b) for b in blocks] == [4, 4, 4, 1][:3]  # 13 tokens: the single leftover token is dropped
    assert [t for b in blocks for t in b] == [t for d in docs for t in d][:12]
    assert [t for b in pack(docs, 5) for t in b] == [t for d in docs for t in d]  # 13 = 5 + 5 + 3: all kept


def test_clm_blocks_frame_documents_with_bos_and_eos():
    tok = train_tokenizer(TEXTS, TokenizerConfig(kind="bpe", vocab_size=300, min_frequency=1))
    data = clm_blocks([Document(t) for t in TEXTS[:5]], tok, block_size=16)
    stream = [t for block in data.encoded.input_ids for t in block]
    framed = [t for text in TEXTS[:5] for t in tok(text)["input_ids"]]  # <s> ... </s> per document
    assert framed.count(tok.bos_token_id) == 5 and framed.count(tok.eos_token_id) == 5
    assert stream == framed[:len(stream)] and len(framed) - len(stream) <= 1  # a 1-token remainder is dropped
    assert all(len(b) == 16 for b in data.encoded.input_ids[:-1])


def test_mlm_examples_chunk_long_documents_and_keep_word_ids():
    tok = train_tokenizer(TEXTS, TokenizerConfig(kind="char", vocab_size=500, min_frequency=1))
    words = ("我们", "很", "喜欢", "这家", "酒店", "的", "早餐")
    data = mlm_examples([Document("".join(words), words), Document("房间干净，服务很好" * 5)], tok, max_length=16)
    assert all(len(ids) <= 16 for ids in data.encoded.input_ids)
    assert len(data) == 1 + 4  # 45 characters in chunks of 14: 14 + 14 + 14 + 3
    first = data.word_ids[0]
    assert first[0] == -1 and first[-1] == -1
    assert first[1:-1] == [0, 0, 1, 2, 2, 3, 3, 4, 4, 5, 6, 6]  # the corpus' words, not characters
    for ids, w in zip(data.encoded.input_ids, data.word_ids):
        assert len(ids) == len(w) and ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id


@pytest.mark.parametrize("kind", ["bpe", "char"])  # not wordpiece: the tokenizers library breaks ties at random
def test_tokenizer_training_is_deterministic(kind):
    vocabs = [train_tokenizer(TEXTS, TokenizerConfig(kind=kind, vocab_size=120, min_frequency=1)).get_vocab()
              for _ in range(3)]
    assert vocabs[0] == vocabs[1] == vocabs[2]


def test_cjk_words_tokens_are_words_and_no_character_is_lost(tmp_path):
    from transformers import AutoTokenizer

    texts = ["我们很喜欢这家酒店的早餐", "房间干净，服务很好", "酒店的服务员很热情", "早餐不错，房间有点小"] * 20
    cfg = TokenizerConfig(kind="cjk_words", vocab_size=200, min_frequency=2)
    tok = train_tokenizer(texts, cfg)
    tokens = tok.convert_ids_to_tokens(tok("这家酒店的早餐很好")["input_ids"])
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    assert "酒店" in tokens and "早餐" in tokens  # words, not characters
    assert "".join(tokens[1:-1]) == "这家酒店的早餐很好"  # every character kept, in order
    assert len(tokens) - 2 < len("这家酒店的早餐很好")
    # a long run of Chinese text without punctuation is cut into words, never one [UNK]
    long = "酒店的早餐很好" * 40
    ids = tok(long, add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids and "".join(tok.convert_ids_to_tokens(ids)) == long
    # a character never seen is one [UNK], its neighbours survive
    pieces = tok.convert_ids_to_tokens(tok("酒店龘早餐", add_special_tokens=False)["input_ids"])
    assert pieces == ["酒店", "[UNK]", "早餐"]
    # the source's own segmentation is used where given, and the result is deterministic
    own = [("房间", "干净"), None, None, None] * 20
    again = train_tokenizer(texts, cfg, own)
    assert again.get_vocab() == train_tokenizer(texts, cfg, own).get_vocab()
    assert "房间" in again.get_vocab()
    tok.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "早餐不错，房间有点小 很好"
    assert reloaded(text)["input_ids"] == tok(text)["input_ids"]
    assert tok.decode(tok(text)["input_ids"], skip_special_tokens=True).replace(" ", "") == text.replace(" ", "")
