"""BM25 tokens that work for English and Chinese, and the synthetic paraphrases of the second evaluation.

Latin (and any other space-separated) text: NFKC-normalised, lower-cased runs of letters and digits.
Chinese/Japanese text has no spaces, and a word segmenter would be one more model to ship; BM25 over single
characters and character bigrams is the usual strong baseline for Chinese retrieval (bigrams carry most
two-character words, unigrams keep partial matches).
"""

from __future__ import annotations

import random
import re
import unicodedata
from typing import Literal

from tuneforge.augment.eda import OPERATIONS

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # kana, CJK ideographs (+ extension A, compat.)
_TOKEN = re.compile(f"([{_CJK}]+)|([^\\W_{_CJK}]+)")
_HAS_CJK = re.compile(f"[{_CJK}]")

Cjk = Literal["chars", "bigrams", "both"]


def tokenize(text: str, cjk: Cjk = "both") -> list[str]:
    """``tokenize("Where is my Bag?") == ["where", "is", "my", "bag"]``; ``tokenize("你好吗", "both") ==
    ["你", "好", "吗", "你好", "好吗"]`` (a one-character run gives just the character)."""
    tokens: list[str] = []
    for han, word in _TOKEN.findall(unicodedata.normalize("NFKC", text).lower()):
        if word:
            tokens.append(word)
            continue
        chars = list(han)
        if cjk in ("chars", "both") or len(chars) == 1:
            tokens.extend(chars)
        if cjk in ("bigrams", "both"):
            tokens.extend(a + b for a, b in zip(chars, chars[1:]))
    return tokens


def is_cjk(text: str) -> bool:
    return bool(_HAS_CJK.search(text))


class _NoSynonyms:
    def get(self, word: str) -> list[str]:
        return []


def synthetic_paraphrase(text: str, rng: random.Random, alpha: float) -> tuple[str, str]:
    """(edited text, operation): EDA's random delete or swap (Wei & Zou 2019; augment/eda.py) on words, or on
    characters for Chinese. These are noisy copies, not real paraphrases: a weaker test, reported apart."""
    operation = rng.choice(["delete", "swap"])
    units = list(text.replace(" ", "")) if is_cjk(text) else text.split()
    edited = OPERATIONS[operation](units, alpha, rng, _NoSynonyms())
    return ("".join(edited) if is_cjk(text) else " ".join(edited)), operation
