"""Train a tokenizer on the corpus with ``tokenizers`` and wrap it as a transformers fast tokenizer.

* ``wordpiece``: BERT's (Devlin et al., 2019): BERT normaliser and pre-tokeniser (every CJK character is its own
  word), ``##`` continuation pieces, ``[CLS] ... [SEP]``.
* ``char``: one token per character (the usual choice for Chinese BERTs, whose vocabularies are mostly single
  characters): the BERT pipeline with a WordPiece model whose vocabulary holds the most frequent characters, so
  a word of Latin letters or digits splits into characters too.
* ``cjk_words``: Chinese words as tokens, without a segmenter at run time. The vocabulary is every character
  of ``char`` plus the most frequent multi-character words of the corpus, counted on its own segmentation where
  it has one (People's Daily) and on jieba's elsewhere (ties broken alphabetically, so it is deterministic);
  a WordPiece model then cuts each run of Chinese characters (BERT's normaliser *without* its CJK spacing:
  runs end only at spaces and punctuation) greedily, longest known word first, every character being a piece
  too, so no known character is ever lost. 这家酒店的早餐很好 -> 这家 酒店 的 早餐 很好: shorter
  sequences (more text per step) whose tokens are the words a bag-of-words model would use.
* ``bpe``: byte-level BPE (GPT-2 / Llama style): no unknown tokens; ``<s>`` starts and ``</s>`` ends a document.

``char``, ``cjk_words`` and ``bpe`` are deterministic. The ``tokenizers`` WordPiece trainer breaks ties between equally
frequent merges differently in each process, so two runs on a small corpus can get slightly different
vocabularies; the trained tokenizer is saved in the run folder (``tokenizer/``, and ``model/``), and a resumed
run reads it from there.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from tuneforge.errors import TuneforgeError
from tuneforge.pretraining.config import TokenizerConfig

BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
BPE_SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]


def _bert_pipeline(tok, lowercase: bool):
    from tokenizers import normalizers, pre_tokenizers

    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase, handle_chinese_chars=True, strip_accents=None)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tok


def _wrap_bert(tok, generic: bool = False):
    """A transformers fast tokenizer over ``tok`` with BERT's specials. ``generic``: a PreTrainedTokenizerFast,
    which reloads tokenizer.json as it is (BertTokenizerFast rebuilds BERT's own normaliser and WordPiece
    settings from the vocabulary on loading)."""
    from tokenizers import decoders, processors
    from transformers import BertTokenizerFast, PreTrainedTokenizerFast

    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls_id),
                                                                                    ("[SEP]", sep_id)])
    tok.decoder = decoders.WordPiece(prefix="##")
    wrapper = PreTrainedTokenizerFast if generic else BertTokenizerFast
    return wrapper(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                   sep_token="[SEP]", mask_token="[MASK]")


def train_tokenizer(texts: Iterable[str], cfg: TokenizerConfig,
                    segmented: list[tuple[str, ...] | None] | None = None):
    """A ``PreTrainedTokenizerFast`` trained on ``texts`` (a list: it is read more than once for ``char``).
    ``segmented`` (``cjk_words`` only): each text's own word segmentation, or None where it has none."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    texts = list(texts)
    if cfg.kind == "wordpiece":
        tok = _bert_pipeline(Tokenizer(models.WordPiece(unk_token="[UNK]")), cfg.lowercase)
        trainer = trainers.WordPieceTrainer(vocab_size=cfg.vocab_size, min_frequency=cfg.min_frequency,
                                            special_tokens=BERT_SPECIALS, continuing_subword_prefix="##")
        tok.train_from_iterator(texts, trainer)
        # The trainer returns its vocabulary in hash-map order, different on every call: renumber it (special
        # tokens first, then sorted), so that the same vocabulary always gets the same ids.
        trained = tok.get_vocab()
        ordered = BERT_SPECIALS + sorted(t for t in trained if t not in BERT_SPECIALS)
        tok = _bert_pipeline(Tokenizer(models.WordPiece({t: i for i, t in enumerate(ordered)}, unk_token="[UNK]")),
                             cfg.lowercase)
        return _wrap_bert(tok)
    if cfg.kind == "char":
        counts = Counter(ch for text in texts for ch in (text.lower() if cfg.lowercase else text) if not ch.isspace())
        chars = [c for c, n in counts.most_common() if n >= cfg.min_frequency][:cfg.vocab_size - len(BERT_SPECIALS)]
        vocab = {t: i for i, t in enumerate(BERT_SPECIALS + sorted(chars))}
        # max_input_chars_per_word=1 would make any longer word [UNK]; instead every character is also its own
        # "##" piece, so "abc" becomes a ##b ##c and no known character is ever lost.
        for c in sorted(chars):
            vocab.setdefault("##" + c, len(vocab))
        tok = _bert_pipeline(Tokenizer(models.WordPiece(vocab, unk_token="[UNK]")), cfg.lowercase)
        return _wrap_bert(tok)
    if cfg.kind == "cjk_words":
        return _cjk_words(texts, cfg, segmented)
    # Byte-level BPE
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=cfg.vocab_size, min_frequency=cfg.min_frequency,
                                  special_tokens=BPE_SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    bos, eos = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> $B:1 </s>:1",
                                                       special_tokens=[("<s>", bos), ("</s>", eos)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>")


def _is_cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" or "\uf900" <= ch <= "\ufaff"


def _cjk_words(texts: list[str], cfg: TokenizerConfig, segmented: list[tuple[str, ...] | None] | None = None):
    """The ``cjk_words`` tokenizer; ``segmented[i]``: the source's own words of ``texts[i]``, if it has them."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers

    try:
        import jieba
    except ImportError:
        raise TuneforgeError("tokenizer.kind: cjk_words needs jieba (pip install jieba) to find the Chinese words "
                             "of the corpus; or use kind: char") from None
    jieba.setLogLevel(60)  # no "Building prefix dict..." chatter
    segmented = segmented or [None] * len(texts)
    chars, words = Counter(), Counter()
    for text, own in zip(texts, segmented):
        text = text.lower() if cfg.lowercase else text
        chars.update(ch for ch in text if not ch.isspace())
        pieces = [w.lower() if cfg.lowercase else w for w in own] if own is not None else jieba.lcut(text, HMM=False)
        words.update(w for w in pieces if len(w) > 1 and all(_is_cjk(c) for c in w))
    by_count = sorted(((n, c) for c, n in chars.items() if n >= cfg.min_frequency), key=lambda nc: (-nc[0], nc[1]))
    kept_chars = [c for _, c in by_count][:cfg.vocab_size - len(BERT_SPECIALS)]
    room = cfg.vocab_size - len(BERT_SPECIALS) - len(kept_chars)
    by_count = sorted(((n, w) for w, n in words.items() if n >= cfg.min_frequency), key=lambda nw: (-nw[0], nw[1]))
    known = set(kept_chars)
    kept_words = [w for _, w in by_count if all(c in known for c in w)][:max(room, 0)]
    pieces = sorted(kept_chars) + sorted(kept_words)
    vocab = {t: i for i, t in enumerate(BERT_SPECIALS + pieces)}
    # continuing_subword_prefix "": a word is the same token at the start of a run and inside it (no ## copies,
    # half the embeddings). max_input_chars_per_word: WordPiece turns a longer pre-token into one [UNK], and a run
    # of Chinese text between two punctuation marks can be long.
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=10_000,
                                     continuing_subword_prefix=""))
    # handle_chinese_chars=False: no spaces around each CJK character, so BertPreTokenizer (whitespace and
    # punctuation, CJK punctuation included) leaves whole runs of Chinese text to the word pieces.
    tok.normalizer = normalizers.BertNormalizer(lowercase=cfg.lowercase, handle_chinese_chars=False,
                                                strip_accents=None)
    # WordPiece also turns a whole pre-token into [UNK] when one of its characters is unknown: every character
    # outside the vocabulary is split off on its own first, so only it becomes [UNK].
    unknown = Regex("[^" + "".join(re.escape(c) for c in sorted(kept_chars)) + "]")
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.BertPreTokenizer(),
                                                 pre_tokenizers.Split(unknown, behavior="isolated")])
    return _wrap_bert(tok, generic=True)
