"""Hybrid retrieval over the knowledge base: BM25 candidates and dense candidates, fused, one hit per answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from tuneforge.apps.assistant.bm25 import BM25Index
from tuneforge.apps.assistant.dense import DenseIndex
from tuneforge.apps.assistant.fusion import mix, rrf
from tuneforge.apps.assistant.kb import Entry
from tuneforge.errors import TuneforgeError

Mode = Literal["bm25", "dense", "hybrid"]


@dataclass(frozen=True)
class Hit:
    index: int  # the entry's position in the knowledge base
    score: float  # the fused score (rrf or mix); for one retriever alone, its own score
    similarity: float  # how well the matched question fits the query, in [0, 1]: cosine or token coverage
    bm25: float | None
    dense: float | None


class Retriever:
    def __init__(self, entries: list[Entry], bm25: BM25Index | None, dense: DenseIndex | None, cfg) -> None:
        """``cfg``: the config's ``retrieval:`` section."""
        self.entries, self.bm25, self.dense, self.cfg = entries, bm25, dense, cfg

    @property
    def modes(self) -> list[Mode]:
        return [m for m, ok in (("bm25", self.bm25 is not None), ("dense", self.dense is not None),
                                ("hybrid", self.bm25 is not None and self.dense is not None)) if ok]

    def default_mode(self) -> Mode:
        return self.modes[-1]

    def coverage(self, query: str, index: int) -> float:
        """Share of the query's distinct BM25 tokens found in the entry's indexed text."""
        from tuneforge.apps.assistant.text import tokenize

        wanted = set(tokenize(query, self.cfg.cjk))
        if not wanted:
            return 0.0
        return len(wanted & set(tokenize(self.text_of(index), self.cfg.cjk))) / len(wanted)

    def text_of(self, index: int) -> str:
        e = self.entries[index]
        return e.question if self.cfg.fields == "question" else f"{e.question} {e.answer}"

    def search(self, query: str, k: int = 5, mode: Mode | None = None, query_vector: np.ndarray | None = None
               ) -> list[Hit]:
        """The best ``k`` entries with distinct answers, best first."""
        mode = mode or self.default_mode()
        if mode not in self.modes:
            raise TuneforgeError(f'retrieval mode "{mode}" needs an index this folder has not built; it has: '
                                 f"{', '.join(self.modes)}.")
        n = self.cfg.candidates
        lexical: dict[int, float] = {}
        if mode in ("bm25", "hybrid"):
            scores = self.bm25.scores(query)
            order = np.argsort(-scores, kind="stable")[:n]
            lexical = {int(i): float(scores[i]) for i in order if scores[i] > 0}
        cosines: dict[int, float] = {}
        if mode in ("dense", "hybrid"):
            if query_vector is None:
                query_vector = self.dense.embed([query])[0]
            cosines = dict(self.dense.search(query_vector, n))
        if mode == "bm25":
            ranked = [(d, lexical[d]) for d in _best_first(lexical)]
        elif mode == "dense":
            ranked = [(d, cosines[d]) for d in _best_first(cosines)]
        elif self.cfg.fusion == "rrf":
            ranked = rrf([_best_first(lexical), _best_first(cosines)], self.cfg.rrf_k)
        else:
            ranked = mix(cosines, lexical, self.cfg.dense_weight)
        hits, answers = [], set()
        for index, score in ranked:
            group = self.entries[index].group
            if group in answers:
                continue
            answers.add(group)
            if self.dense is not None and query_vector is not None:
                cosine = cosines.get(index, float(self.dense.vectors[index] @ query_vector))
                similarity = max(0.0, min(1.0, cosine))
            else:
                cosine, similarity = None, self.coverage(query, index)
            hits.append(Hit(index, score, similarity, lexical.get(index), cosine))
            if len(hits) == k:
                break
        return hits


def _best_first(scores: dict[int, float]) -> list[int]:
    return sorted(scores, key=lambda d: (-scores[d], d))
