"""The text-based recommender: ``tuneforge recommend`` (docs/RECOMMEND.md).

A two-tower encoder (a user's click history as text vs an item's text; shared weights, mean pooling) trained
on a click log with in-batch and logged negatives, split by time, and scored against a popularity and a
TF-IDF baseline on the same split.

    from tuneforge.apps.recommend import train_recommender, load_recommender
    rec = train_recommender("configs/recommend-demo.yaml", ["train.epochs=1"])
    rec.metrics["model"]["ndcg@10"]; rec.rank(user="u007", k=10)
    rec = add_reranker(rec.dir, ["rerank.epochs=2"])   # a cross-encoder on top, the towers as trained
"""

from __future__ import annotations

from typing import Any

__all__ = ["RecommendConfig", "Recommender", "add_reranker", "load_recommender", "train_recommender"]


def __getattr__(name: str) -> Any:  # lazy: `tuneforge --help` must not import torch and transformers
    if name == "RecommendConfig":
        from tuneforge.apps.recommend.config import RecommendConfig

        return RecommendConfig
    if name == "train_recommender":
        from tuneforge.apps.recommend.train import train

        return train
    if name == "add_reranker":
        from tuneforge.apps.recommend.train import add_reranker

        return add_reranker
    if name in ("Recommender", "load_recommender"):
        from tuneforge.apps.recommend import run

        return getattr(run, name)
    raise AttributeError(name)
