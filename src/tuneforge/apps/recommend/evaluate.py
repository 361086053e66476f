"""Score the test part of a split with the model and both baselines: AUC, NDCG@k, recall@k, on the same rows.

- AUC: over every logged test impression (click vs shown-not-clicked), scores of that user and item.
- NDCG@k and recall@k: per test user with at least one test click, the whole catalogue minus the items the
  user clicked in train is ranked; the relevant items are the user's test clicks; mean over those users.

A user is described only by the train part (their clicks before the test): nothing from the test leaks in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np

from tuneforge.apps.recommend.baselines import Tfidf, popularity
from tuneforge.apps.recommend.data import Item, Split, history_text
from tuneforge.apps.recommend.metrics import auc, ranking_metrics

# (history texts of the test users) -> (U, N) scores against every item, in catalogue order
Scorer = Callable[[list[str]], np.ndarray]


def evaluate_scores(scores: np.ndarray, users: list[str], split: Split, item_ids: list[str], k: int) -> dict:
    """Metrics of one (U, N) score matrix, row u for ``users[u]``."""
    index = {item: j for j, item in enumerate(item_ids)}
    row = {u: n for n, u in enumerate(users)}
    impressions = [(float(scores[row[r.user], index[r.item]]), r.label) for r in split.test]
    relevant: dict[str, set[str]] = defaultdict(set)
    for r in split.test:
        if r.label:
            relevant[r.user].add(r.item)
    per_user = {}
    for u in users:
        seen = set(split.history.get(u, []))
        per_user[u] = ({item: float(scores[row[u], j]) for j, item in enumerate(item_ids) if item not in seen},
                       relevant.get(u, set()))
    return {"auc": auc([s for s, _ in impressions], [y for _, y in impressions]), **ranking_metrics(per_user, k)}


def evaluate_all(model: Scorer | None, split: Split, items: dict[str, Item], history_items: int,
                 k: int) -> dict[str, dict]:
    """{"model": ..., "popularity": ..., "tfidf": ...} (no "model" when ``model`` is None)."""
    item_ids = list(items)
    users = sorted({r.user for r in split.test})
    texts = [history_text(split.history.get(u, []), items, history_items) for u in users]
    pop = popularity(split.train, item_ids)
    results = {"popularity": evaluate_scores(np.tile(pop, (len(users), 1)), users, split, item_ids, k),
               "tfidf": evaluate_scores(Tfidf([items[i].text for i in item_ids]).scores(texts), users, split,
                                        item_ids, k)}
    if model is not None:
        results = {"model": evaluate_scores(model(texts), users, split, item_ids, k), **results}
    return results
