"""A finished recommender run folder: rank items for a user or a history text, evaluate it again.

    from tuneforge.apps.recommend import load_recommender
    rec = load_recommender("runs/recommend-demo")
    rec.rank(user="u007", k=10)          # [{"item": ..., "title": ..., "score": ...}, ...]
    rec.rank(history="python code; sorting algorithms")
    rec.ranking                          # "two-tower" or "two-tower + cross-encoder re-rank of the top 20"

A run trained with ``rerank.enabled`` holds a cross-encoder in reranker/: ``rank`` then re-scores the two
towers' top ``rerank.top_k`` with it (``rerank=False`` ranks by the two towers alone).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tuneforge.apps.recommend.config import RecommendConfig
from tuneforge.apps.recommend.data import Item, history_text
from tuneforge.apps.recommend.encoder import TextEncoder
from tuneforge.apps.recommend.rerank import CrossEncoder, top_candidates
from tuneforge.config import load_config
from tuneforge.errors import TuneforgeError, closest, did_you_mean
from tuneforge.models.precision import resolve_precision


class Recommender:
    def __init__(self, run_dir: Path, cfg: RecommendConfig, encoder: TextEncoder, vectors: torch.Tensor,
                 items: list[dict], histories: dict[str, list[str]], reranker: CrossEncoder | None = None) -> None:
        self.dir, self.cfg, self.encoder, self.vectors = run_dir, cfg, encoder, vectors
        self.items, self.histories, self.reranker = items, histories, reranker
        self.precision = resolve_precision(cfg.train.precision)

    @classmethod
    def load(cls, run_dir: str | Path) -> Recommender:
        from safetensors.torch import load_file

        run_dir = Path(run_dir)
        needed = ["config.yaml", "encoder", "item_embeddings.safetensors", "items.json", "histories.json"]
        missing = [n for n in needed if not (run_dir / n).exists()]
        if missing:
            raise TuneforgeError(f"{run_dir} is not a finished recommender run (missing {', '.join(missing)}); "
                                 "give a folder written by `tuneforge recommend train`.")
        cfg = load_config(RecommendConfig, path=run_dir / "config.yaml")
        items = json.loads((run_dir / "items.json").read_text(encoding="utf-8"))
        histories = json.loads((run_dir / "histories.json").read_text(encoding="utf-8"))
        vectors = load_file(str(run_dir / "item_embeddings.safetensors"))["embeddings"]
        reranker = None
        if cfg.rerank.enabled:
            if not (run_dir / "reranker").is_dir():
                raise TuneforgeError(f"{run_dir}: config.yaml has rerank.enabled but the reranker/ folder is missing; "
                                     "train the run again, or set rerank.enabled: false in its config.yaml.")
            reranker = CrossEncoder.load(run_dir / "reranker")
        return cls(run_dir, cfg, TextEncoder.load(run_dir / "encoder"), vectors, items, histories, reranker)

    @property
    def ranking(self) -> str:
        """The ranking ``rank`` uses, in words."""
        from tuneforge.apps.recommend.train import ranking_name

        return ranking_name(self.cfg) if self.reranker is not None else "two-tower"

    @property
    def metrics(self) -> dict:
        return json.loads((self.dir / "metrics.json").read_text(encoding="utf-8"))

    def history_of(self, user: str) -> str:
        if user not in self.histories:
            hint = did_you_mean(user, self.histories) if len(self.histories) <= 30 or \
                closest(user, self.histories) else \
                f" The log has {len(self.histories)} users with clicks, e.g. {', '.join(sorted(self.histories)[:5])}."
            raise TuneforgeError(f'user "{user}" has no clicks in the run\'s log.{hint} Or describe the user with '
                                 "--history TEXT.")
        by_id = {i["item"]: Item(i["item"], i["title"], tags=tuple(i["tags"])) for i in self.items}
        return history_text(self.histories[user], by_id, self.cfg.data.history_items)

    def rank(self, user: str | None = None, history: str | None = None, k: int = 10,
             exclude_clicked: bool = True, rerank: bool | None = None) -> list[dict]:
        """The top ``k`` items for a known user (their clicks are left out) or for a history text.

        ``score`` is the two towers' cosine; with the run's cross-encoder (``rerank`` None or True) the top
        ``rerank.top_k`` are ordered by its logit, ``rerank_score`` (None below the top ``rerank.top_k``)."""
        if (user is None) == (history is None):
            raise TuneforgeError("Say whom to rank for: a user of the log (--user U) or a text (--history TEXT).")
        if k < 1:
            raise TuneforgeError("--k must be at least 1.")
        if history is not None and not history.strip():
            raise TuneforgeError("--history is empty; describe what the user liked, e.g. --history \"python sorting "
                                 "algorithms; what is a neural network\", or rank a user of the log with --user U.")
        if rerank and self.reranker is None:
            raise TuneforgeError(f"{self.dir} has no re-ranker (it was trained without rerank.enabled); rank without "
                                 "--rerank, or train with rerank.enabled=true.")
        text = self.history_of(user) if user is not None else history
        vector = self.encoder.encode([text], self.cfg.data.history_max_length, self.precision)[0]  # (H,)
        scores = (self.vectors @ vector).numpy()  # (N,)
        skip = set(self.histories.get(user, [])) if user is not None and exclude_clicked else set()
        ids = [i["item"] for i in self.items]
        order = top_candidates(scores, ids, skip, len(ids))
        cross: dict[int, float] = {}
        if self.reranker is not None and rerank is not False:
            top = order[:self.cfg.rerank.top_k]
            logits = self.reranker.score([text] * len(top), [self._text(j) for j in top], self.cfg.rerank.max_length,
                                         self.precision)
            cross = {j: float(s) for j, s in zip(top, logits)}
            order = sorted(top, key=lambda j: -cross[j]) + order[len(top):]
        return [{"item": ids[j], "title": self.items[j]["title"], "tags": self.items[j]["tags"],
                 "score": round(float(scores[j]), 4),
                 **({"rerank_score": round(cross[j], 4) if j in cross else None} if cross else {})}
                for j in order[:k]]

    def _text(self, j: int) -> str:
        """Item j's text as the cross-encoder read it in training (items.json keeps it since re-ranking)."""
        i = self.items[j]
        return i.get("text") or Item(i["item"], i["title"], tags=tuple(i["tags"])).text

    def evaluate(self) -> dict:
        """Re-read the config's CSV files, split them the same way, score the model and both baselines."""
        from tuneforge.apps.recommend.evaluate import evaluate_all
        from tuneforge.apps.recommend.rerank import evaluate_rerank
        from tuneforge.apps.recommend.train import load_data, model_scorer

        items, _, split = load_data(self.cfg)
        ids = [i["item"] for i in self.items]
        if ids != list(items):
            raise TuneforgeError(f"{self.cfg.data.items} no longer holds the run's items in the same order; "
                                 f"retrain (tuneforge recommend train {self.dir / 'config.yaml'}).")
        scorer = model_scorer(self.encoder, self.vectors, self.cfg, self.precision)
        metrics = evaluate_all(scorer, split, items, self.cfg.data.history_items, self.cfg.k)
        if self.reranker is not None:
            r = self.cfg.rerank
            metrics["rerank"] = evaluate_rerank(scorer, self.reranker.scorer(r.max_length, self.precision), split,
                                                items, self.cfg.data.history_items, self.cfg.k, r.top_k)
        return {**metrics, "ranking": self.ranking, "split": split.describe()}


def load_recommender(run_dir: str | Path) -> Recommender:
    return Recommender.load(run_dir)
