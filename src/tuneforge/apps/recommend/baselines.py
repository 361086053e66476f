"""The two baselines every model is compared with, on the same split and candidates.

- popularity: an item's score is its number of clicks in the train part (the same list for everyone);
- TF-IDF: cosine similarity between the TF-IDF vector of the user's history text and of the item's text
  (scikit-learn's ``TfidfVectorizer``, fitted on the item texts, unigrams and bigrams, sublinear tf).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from tuneforge.apps.recommend.data import Interaction


def popularity(train: list[Interaction], item_ids: list[str]) -> np.ndarray:
    """(N,) train clicks per item, in the order of ``item_ids``."""
    clicks = Counter(r.item for r in train if r.label)
    return np.array([float(clicks[i]) for i in item_ids])


class Tfidf:
    def __init__(self, item_texts: list[str]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
        self.items = self.vectorizer.fit_transform(item_texts)  # (N, V), rows of unit length

    def scores(self, history_texts: list[str]) -> np.ndarray:
        """(U, N) cosine similarities of each history text with every item."""
        users = self.vectorizer.transform(history_texts)  # (U, V), unit rows (zero for an empty history)
        return (users @ self.items.T).toarray()
