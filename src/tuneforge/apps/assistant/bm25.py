"""Lexical retrieval: BM25 (Robertson & Zaragoza 2009) with the bm25s library over our own tokens (text.py).

For a query q and a document d of length |d| (average length L over the index),

    score(q, d) = sum_{t in q} idf(t) * tf(t, d) * (k1 + 1) / (tf(t, d) + k1 * (1 - b + b * |d| / L))

with Lucene's idf(t) = log(1 + (N - df(t) + 0.5) / (df(t) + 0.5)). bm25s precomputes each (t, d) term as a
sparse matrix, so a query's scores over the whole knowledge base are one sparse row sum.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tuneforge.apps.assistant.text import Cjk, tokenize


class BM25Index:
    def __init__(self, retriever, cjk: Cjk, size: int) -> None:
        self.retriever, self.cjk, self.size = retriever, cjk, size

    @classmethod
    def build(cls, texts: list[str], k1: float = 1.2, b: float = 0.75, cjk: Cjk = "both") -> BM25Index:
        import bm25s

        retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
        # a text without a single token (only punctuation) still needs a row: the empty token stands in
        retriever.index([tokenize(t, cjk) or [""] for t in texts], show_progress=False)
        return cls(retriever, cjk, len(texts))

    def tokens(self, query: str) -> list[str]:
        return tokenize(query, self.cjk)

    def scores(self, query: str) -> np.ndarray:
        """(N,) BM25 scores of every document; zeros when no query token occurs in the index."""
        known = [t for t in self.tokens(query) if t and t in self.retriever.vocab_dict]
        if not known:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self.retriever.get_scores(known), dtype=np.float32)

    def save(self, folder: Path) -> None:
        self.retriever.save(str(folder), show_progress=False)  # .npy arrays (no pickle) and JSON
        (folder / "tokenizer.json").write_text(json.dumps({"cjk": self.cjk, "size": self.size}), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> BM25Index:
        import bm25s

        info = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
        return cls(bm25s.BM25.load(str(folder), allow_pickle=False), info["cjk"], info["size"])
