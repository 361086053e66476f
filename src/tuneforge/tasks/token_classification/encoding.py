"""Word-level BIO tags on subword tokens, through the tokenizer's character offsets.

A word may become several subwords (``Johansson`` -> ``johan ##sson``); as in BERT's NER recipe (Devlin et
al., 2019, section 5.3) only its *first* subword carries the word's label, the others get -100 (ignored by
the cross-entropy). Words are matched to subwords by character offsets into the original text, not by the
tokenizer's own word split, so any word segmentation works (characters for Chinese, CoNLL tokens for
English). A subword can also cover several words (a tokenizer that keeps ``1998`` whole while the data
tags its four characters): it is labelled with the first, and when predicting, the words it swallowed
continue its entity (:func:`word_tags`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tuneforge.errors import TuneforgeError
from tuneforge.tasks.token_classification.records import TokenExample
from tuneforge.training.batching import Encoded

IGNORE = -100


@dataclass
class TokenEncoded(Encoded):
    """:class:`Encoded` with one label per subword (``labels[i][k]``; -100: no label) and, per example and
    word, where the word is among the subwords (see :func:`align`)."""

    word_subwords: list[list[int | None]] | None = None


def _subword_starts(text: str, offsets: Sequence[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """(start, end, index) of every real subword; special tokens have empty offsets. Byte-level and
    SentencePiece tokenizers may count the space before a word into its first subword: skip it."""
    out = []
    for k, (start, end) in enumerate(offsets):
        while start < end and text[start].isspace():
            start += 1
        if start < end:
            out.append((start, end, k))
    return out


def align(example: TokenExample, offsets: Sequence[tuple[int, int]]) -> list[int | None]:
    """For each word: the subword starting at its first character (k >= 0), or ``-k - 1`` for the subword
    ``k`` that covers its start from earlier, or None when no subword reaches it (truncated)."""
    starts = _subword_starts(example.text, offsets)
    out: list[int | None] = []
    j = 0
    for word_start, _ in example.offsets:
        while j + 1 < len(starts) and starts[j + 1][0] <= word_start:
            j += 1
        if starts and starts[j][0] == word_start:
            out.append(starts[j][2])
        elif starts and starts[j][0] < word_start < starts[j][1]:
            out.append(-starts[j][2] - 1)
        else:  # no subword holds the word's first character: truncated away, or dropped by the tokenizer
            out.append(None)
    return out


def encode_tokens(examples: Sequence[TokenExample], tokenizer, labels: Sequence[str], max_length: int
                  ) -> TokenEncoded:
    """Tokenise all texts in one call (fast tokenizers only: they give character offsets)."""
    if not getattr(tokenizer, "is_fast", False):
        raise TuneforgeError(f"Token classification needs a fast tokenizer (with character offsets); "
                             f"{type(tokenizer).__name__} is a slow one. Give a model folder with a tokenizer.json.")
    label_ids = {name: i for i, name in enumerate(labels)}
    out = tokenizer([e.text for e in examples], truncation=True, max_length=max_length, padding=False,
                    return_offsets_mapping=True)
    all_labels, all_words = [], []
    for example, ids, offsets in zip(examples, out["input_ids"], out["offset_mapping"]):
        words = align(example, offsets)
        row = [IGNORE] * len(ids)
        if example.tags is not None:
            for tag, k in zip(example.tags, words):
                if k is not None and k >= 0 and row[k] == IGNORE:
                    row[k] = label_ids[tag]
        all_labels.append(row)
        all_words.append(words)
    return TokenEncoded(input_ids=out["input_ids"], labels=all_labels, word_subwords=all_words)


def word_tags(words: list[int | None], probs: np.ndarray, labels: Sequence[str]) -> tuple[list[str], list[float]]:
    """Each word's tag and its probability from the subword probabilities ``probs`` (n_subwords, C).

    A word with its own first subword takes that subword's most likely tag. A word inside a subword that
    began earlier continues its entity (``I-X`` after ``B-X`` or ``I-X``, else ``O``). A truncated word is
    ``O`` with probability 0 (the prediction does not reach it)."""
    tags, scores = [], []
    for k in words:
        if k is None:
            tags.append("O")
            scores.append(0.0)
            continue
        row = probs[k if k >= 0 else -k - 1]
        best = int(row.argmax())
        tag = labels[best]
        if k < 0:
            tag = "I-" + tag[2:] if tag != "O" else "O"
        tags.append(tag)
        scores.append(float(row[best]))
    return tags, scores
