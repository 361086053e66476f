"""Tokenise a corpus for the two objectives: MLM examples (with word ids) and CLM packed blocks."""

from __future__ import annotations

from dataclasses import dataclass

from tuneforge.pretraining.corpora import Document
from tuneforge.pretraining.packing import pack
from tuneforge.training.batching import Encoded


@dataclass
class LMData:
    """Examples in the loop's :class:`Encoded` form, plus each token's word number (MLM; -1 at special tokens)."""

    encoded: Encoded
    word_ids: list[list[int]] | None = None

    def __len__(self) -> int:
        return len(self.encoded)


def _tokenise(docs: list[Document], tokenizer) -> tuple[list[list[int]], list[list[int]]]:
    """Token ids (no special tokens) and word numbers of each document.

    Documents with their own segmentation are tokenised word by word (``is_split_into_words``), so the word
    numbers are the corpus' words; the others get the tokenizer's pre-tokenisation (English words; for Chinese,
    single characters).
    """
    ids: list[list[int] | None] = [None] * len(docs)
    words: list[list[int] | None] = [None] * len(docs)
    for segmented in (True, False):
        picked = [i for i, d in enumerate(docs) if (d.words is not None) == segmented]
        if not picked:
            continue
        batch = [list(docs[i].words) for i in picked] if segmented else [docs[i].text for i in picked]
        out = tokenizer(batch, is_split_into_words=segmented, add_special_tokens=False, truncation=False)
        for row, i in enumerate(picked):
            ids[i] = out["input_ids"][row]
            words[i] = [-1 if w is None else w for w in out.word_ids(row)]
    return ids, words  # type: ignore[return-value]


def mlm_examples(docs: list[Document], tokenizer, max_length: int) -> LMData:
    """``[CLS] chunk [SEP]`` examples: a long document is cut into several chunks rather than truncated."""
    ids, words = _tokenise(docs, tokenizer)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    if cls is None:  # a tokenizer without [CLS] (RoBERTa-style <s> ... </s>)
        cls, sep = tokenizer.bos_token_id, tokenizer.eos_token_id
    width = max_length - 2
    out_ids, out_words = [], []
    for doc_ids, doc_words in zip(ids, words):
        for start in range(0, len(doc_ids), width):
            chunk, chunk_words = doc_ids[start:start + width], doc_words[start:start + width]
            first = min((w for w in chunk_words if w >= 0), default=0)
            out_ids.append([cls, *chunk, sep])
            out_words.append([-1, *(w - first if w >= 0 else -1 for w in chunk_words), -1])
    return LMData(Encoded(input_ids=out_ids, labels=[-1] * len(out_ids)), out_words)


def clm_blocks(docs: list[Document], tokenizer, block_size: int) -> LMData:
    """Documents framed by bos / eos, concatenated and cut into blocks (:func:`packing.pack`)."""
    ids, _ = _tokenise(docs, tokenizer)
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    framed = [[*([bos] if bos is not None else []), *doc, *([eos] if eos is not None else [])] for doc in ids]
    blocks = pack(framed, block_size)
    return LMData(Encoded(input_ids=blocks, labels=[-1] * len(blocks)))
