"""EDA: easy data augmentation (Wei & Zou 2019, https://arxiv.org/abs/1901.11196).

Four operations on a text of n words, each changing about ``alpha * n`` words (at least one):

- synonym: replace that many non-stop words by a synonym;
- insert:  insert a synonym of a random word at a random position, that many times;
- swap:    swap two random words, that many times;
- delete:  delete each word with probability ``alpha`` (never all of them).

Synonyms come from any object with ``get(word) -> list[str]`` (augment/synonyms.py); stop words
(``STOP_WORDS``) are never looked up, whatever the source.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Protocol

# Never replaced by a synonym nor used as the source of an inserted one: function words carry no content,
# and their embedding neighbours are other function words ("not" ~ "never" would flip a sentiment).
STOP_WORDS = frozenset("""a an the and or but if of at by for with about to from in on into over under up down out
off again then once here there when where why how all any both each few more most other some such no nor not only
own same so than too very can will just don should now is are was were be been being have has had do does did i me
my we our you your he him his she her it its they them their what which who whom this that these those am""".split())


class Synonyms(Protocol):
    def get(self, word: str) -> list[str]: ...


def _count(words: list[str], alpha: float) -> int:
    return max(1, int(alpha * len(words)))


def synonym_replace(words: list[str], alpha: float, rng: random.Random, synonyms: Synonyms) -> list[str]:
    out = words[:]
    candidates = [i for i, w in enumerate(words) if synonyms.get(w)]
    rng.shuffle(candidates)
    for i in candidates[:_count(words, alpha)]:
        out[i] = rng.choice(synonyms.get(words[i]))
    return out


def random_insert(words: list[str], alpha: float, rng: random.Random, synonyms: Synonyms) -> list[str]:
    out = words[:]
    with_synonyms = [w for w in words if synonyms.get(w)]
    if not with_synonyms:
        return out
    for _ in range(_count(words, alpha)):
        out.insert(rng.randrange(len(out) + 1), rng.choice(synonyms.get(rng.choice(with_synonyms))))
    return out


def random_swap(words: list[str], alpha: float, rng: random.Random, synonyms: Synonyms) -> list[str]:
    out = words[:]
    if len(out) < 2:
        return out
    for _ in range(_count(words, alpha)):
        i, j = rng.sample(range(len(out)), 2)
        out[i], out[j] = out[j], out[i]
    return out


def random_delete(words: list[str], alpha: float, rng: random.Random, synonyms: Synonyms) -> list[str]:
    if len(words) < 2:
        return words[:]
    kept = [w for w in words if rng.random() >= alpha]
    return kept or [rng.choice(words)]


OPERATIONS: dict[str, Callable[[list[str], float, random.Random, Synonyms], list[str]]] = {
    "synonym": synonym_replace, "insert": random_insert, "swap": random_swap, "delete": random_delete}


def eda(text: str, operation: str, alpha: float, rng: random.Random, synonyms: Synonyms) -> str:
    """One edited copy of ``text`` (split on whitespace, so punctuation stays attached to its word)."""
    words = text.split()
    if not words:
        return text
    return " ".join(OPERATIONS[operation](words, alpha, rng, _Stripped(synonyms)))


class _Stripped:
    """Look words up without surrounding punctuation ("late!" -> "late"), keeping the punctuation."""

    def __init__(self, synonyms: Synonyms) -> None:
        self.synonyms = synonyms

    def get(self, word: str) -> list[str]:
        core = word.strip(".,!?;:\"'()")
        if not core or core.lower() in STOP_WORDS:
            return []
        start = word.find(core)
        return [word[:start] + s + word[start + len(core):] for s in self.synonyms.get(core)]
