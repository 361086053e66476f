"""Synonyms from the model's own input embeddings: an offline source for EDA's synonym operations.

EDA (Wei & Zou 2019) draws synonyms from WordNet. No PyPI package ships WordNet's data in a form that
installs without a download step (nltk fetches it at run time), so tuneforge uses the nearest neighbours
of a word's row in the backbone's input embedding matrix instead: available for every model, offline,
and in the model's own vocabulary. The price: neighbours are words used in similar contexts, which for
sentiment words can include antonyms ("good" ~ "bad"); the measured effect is in docs/FEWSHOT.md.
Only whole-word vocabulary entries of 3+ letters take part, and stop words are never replaced.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from tuneforge.augment.eda import STOP_WORDS


class EmbeddingSynonyms:
    """``get(word)`` -> up to ``k`` neighbours with cosine similarity >= ``min_similarity``."""

    def __init__(self, words: list[str], vectors: torch.Tensor, k: int, min_similarity: float) -> None:
        self.index = {w: i for i, w in enumerate(words)}
        self.words = words
        self.unit = torch.nn.functional.normalize(vectors.float(), dim=-1)  # (V, H)
        self.k, self.min_similarity = k, min_similarity
        self._cache: dict[str, list[str]] = {}

    def get(self, word: str) -> list[str]:
        key = word.lower()
        if key in self._cache:
            return self._cache[key]
        i = self.index.get(key)
        found: list[str] = []
        if i is not None and key not in STOP_WORDS:
            sims = self.unit @ self.unit[i]  # (V,)
            sims[i] = -2
            values, ids = sims.topk(self.k)
            found = [self.words[j] for v, j in zip(values.tolist(), ids.tolist()) if v >= self.min_similarity]
        self._cache[key] = found
        return found


@lru_cache(maxsize=4)
def _vocabulary_vectors(model_path: str) -> tuple[list[str], torch.Tensor]:
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    embeddings = AutoModel.from_pretrained(model_path, dtype=torch.float32).get_input_embeddings().weight.detach()
    vocab = tokenizer.get_vocab()
    # Whole words only: WordPiece continuations ("##ing"), SentencePiece/BPE markers and punctuation are no synonyms.
    words = sorted(w for w, i in vocab.items() if w.isalpha() and w.islower() and len(w) >= 3 and i < len(embeddings)
                   and w not in STOP_WORDS)
    ids = torch.tensor([vocab[w] for w in words], dtype=torch.long)
    return words, embeddings[ids].clone()


def embedding_synonyms(model_path: str, k: int = 5, min_similarity: float = 0.4) -> EmbeddingSynonyms:
    """The synonym source of a model folder (its tokenizer vocabulary and input embeddings)."""
    words, vectors = _vocabulary_vectors(model_path)
    return EmbeddingSynonyms(words, vectors, k, min_similarity)
