"""Train a tokenizer on the corpus with ``tokenizers`` and wrap it as a transformers fast tokenizer.

* ``wordpiece``: BERT's (Devlin et al., 2019): BERT normaliser and pre-tokeniser (every CJK character is its own
  word), ``##`` continuation pieces, ``[CLS] ... [SEP]``.
* ``char``: one token per character (the usual choice for Chinese BERTs, whose vocabularies are mostly single
  characters): the BERT pipeline with a WordPiece model whose vocabulary holds the most frequent characters, so
  a word of Latin letters or digits splits into characters too.
* ``bpe``: byte-level BPE (GPT-2 / Llama style): no unknown tokens; ``<s>`` starts and ``</s>`` ends a document.

``char`` and ``bpe`` are deterministic. The ``tokenizers`` WordPiece trainer breaks ties between equally
frequent merges differently in each process, so two runs on a small corpus can get slightly different
vocabularies; the trained tokenizer is saved in the run folder (``tokenizer/``, and ``model/``), and a resumed
run reads it from there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from tuneforge.pretraining.config import TokenizerConfig

BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
BPE_SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]


def _bert_pipeline(tok, lowercase: bool):
    from tokenizers import normalizers, pre_tokenizers

    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase, handle_chinese_chars=True, strip_accents=None)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tok


def _wrap_bert(tok):
    from tokenizers import decoders, processors
    from transformers import BertTokenizerFast

    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls_id),
                                                                                    ("[SEP]", sep_id)])
    tok.decoder = decoders.WordPiece(prefix="##")
    return BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                             sep_token="[SEP]", mask_token="[MASK]")


def train_tokenizer(texts: Iterable[str], cfg: TokenizerConfig):
    """A ``PreTrainedTokenizerFast`` trained on ``texts`` (a list: it is read more than once for ``char``)."""
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
