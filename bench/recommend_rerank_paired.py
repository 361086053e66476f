"""Per-user comparison of a re-ranked recommender run: two towers alone vs two towers + cross-encoder re-rank.

The run's metrics.json gives the means; this script gives what the means hide on a small test (175 users on
the demo): how many users the re-ranker helped, hurt or left alone, and a paired bootstrap 95% interval of the
difference of the means (users resampled with replacement, the same users for both rankings).

    PYTHONPATH=src .venv/bin/python bench/recommend_rerank_paired.py runs/recommend-demo/run-TIME [--k 10]

The run must have been trained with rerank.enabled (e.g. `tuneforge recommend demo rerank.enabled=true`); its
config's CSV files are read again and split the same way, as `tuneforge recommend eval` does.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
from collections import defaultdict

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def per_user(scores: np.ndarray, users: list[str], split, item_ids: list[str], k: int) -> dict[str, tuple]:
    from tuneforge.apps.recommend.metrics import ndcg_recall_at_k

    relevant: dict[str, set[str]] = defaultdict(set)
    for r in split.test:
        if r.label:
            relevant[r.user].add(r.item)
    out = {}
    for n, u in enumerate(users):
        seen = set(split.history.get(u, []))
        candidates = {item: float(scores[n, j]) for j, item in enumerate(item_ids) if item not in seen}
        value = ndcg_recall_at_k(candidates, relevant.get(u, set()), k)
        if value is not None:
            out[u] = value
    return out


def main() -> None:
    import torch

    from tuneforge.apps.recommend import load_recommender
    from tuneforge.apps.recommend.data import history_text
    from tuneforge.apps.recommend.rerank import rerank_matrix
    from tuneforge.apps.recommend.train import load_data, model_scorer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=pathlib.Path)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rec = load_recommender(args.run)
    if rec.reranker is None:
        sys.exit(f"{args.run} has no re-ranker; train it with rerank.enabled=true")
    cfg, r = rec.cfg, rec.cfg.rerank
    items, _, split = load_data(cfg)
    item_ids = list(items)
    users = sorted({row.user for row in split.test})
    texts = [history_text(split.history.get(u, []), items, cfg.data.history_items) for u in users]
    base = model_scorer(rec.encoder, rec.vectors, cfg, rec.precision)(texts)
    skips = [set(split.history.get(u, [])) for u in users]
    reranked = rerank_matrix(base, texts, skips, item_ids, items, rec.reranker.scorer(r.max_length, rec.precision),
                             r.top_k)
    before, after = per_user(base, users, split, item_ids, args.k), per_user(reranked, users, split, item_ids, args.k)
    names = sorted(before)
    rng = np.random.default_rng(0)
    print(f"{args.run}: {len(names)} test users with a click; re-rank of the top {r.top_k}")
    for m, name in enumerate((f"ndcg@{args.k}", f"recall@{args.k}")):
        a = np.array([before[u][m] for u in names])
        b = np.array([after[u][m] for u in names])
        diff = b - a
        boot = [diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(args.resamples)]
        low, high = np.percentile(boot, [2.5, 97.5])
        print(f"{name}: two towers {a.mean():.4f}, re-ranked {b.mean():.4f}, difference {diff.mean():+.4f} "
              f"(paired bootstrap 95% interval {low:+.4f} to {high:+.4f}); users better {int((diff > 1e-12).sum())}, "
              f"worse {int((diff < -1e-12).sum())}, same {int((abs(diff) <= 1e-12).sum())}")


if __name__ == "__main__":
    main()
