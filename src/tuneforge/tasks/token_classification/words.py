"""Words of a text, with character offsets, and texts built from words.

One rule serves both directions, so prediction sees the same words training saw: every CJK character is a
word of its own (Chinese NER is tagged per character), a run of letters or digits is a word, and every
other non-space character (punctuation) is a word.
"""

from __future__ import annotations

import re

from tuneforge.tasks.token_classification.records import TokenExample

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_WORD = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|[^\s\w]|\S", re.UNICODE)


def is_cjk(char: str) -> bool:
    return bool(re.match(f"[{_CJK}]", char))


def split_words(text: str) -> list[tuple[str, int, int]]:
    """(word, start, end) for every word of ``text``."""
    return [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]


def from_text(text: str, tags: list[str] | None = None) -> TokenExample:
    words = split_words(text)
    return TokenExample(text=text, words=tuple(w for w, _, _ in words), offsets=tuple((s, e) for _, s, e in words),
                        tags=tuple(tags) if tags is not None else None)


def join_words(words: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """A text for words given without one: a space between words, none between two CJK characters
    (so a character-tagged Chinese sentence reads as Chinese). Returns the text and each word's offsets."""
    parts, offsets, pos = [], [], 0
    for i, word in enumerate(words):
        if i and not (is_cjk(words[i - 1][-1]) and is_cjk(word[0])):
            parts.append(" ")
            pos += 1
        offsets.append((pos, pos + len(word)))
        parts.append(word)
        pos += len(word)
    return "".join(parts), offsets


def locate_words(text: str, words: list[str]) -> list[tuple[int, int]] | None:
    """Offsets of ``words`` found in order in ``text`` (anything may lie between them); None if one is
    missing."""
    offsets, pos = [], 0
    for word in words:
        start = text.find(word, pos)
        if start < 0:
            return None
        offsets.append((start, start + len(word)))
        pos = start + len(word)
    return offsets
