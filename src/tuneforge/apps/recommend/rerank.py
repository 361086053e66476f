"""Cross-encoder re-ranking of the two towers' top candidates (``rerank.enabled``; docs/RECOMMEND.md).

A cross-encoder reads the user's history text and an item's text together as one input,
``[CLS] history [SEP] item [SEP]``, and gives one relevance logit r(h, i) from a linear head on the pooled
[CLS] state (Nogueira & Cho 2019, "Passage Re-ranking with BERT"). Every token of the history attends to every
token of the item, which two towers, whose vectors meet only in one dot product, cannot do; the price is one
forward pass per (user, item) pair, so it re-scores only each user's top K candidates of the two towers.

Training, on the train part's clicks only (the same examples as the towers): for each click (history h,
clicked item p) ``negatives`` items n_1..n_m the user did not click in train are sampled, and

    listwise: loss = -log( exp r(h, p) / (exp r(h, p) + sum_j exp r(h, n_j)) )
    bce:      loss = mean over the 1 + m pairs of BCE(sigmoid r(h, x), [x = p])

At evaluation (and in ``rank``), per user the top K items of the two-tower scores (train clicks left out;
ties in catalogue order) are lifted above every other item and ordered by r; every item outside the top K
keeps its two-tower score, so the ranking below position K is the two towers' own.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tuneforge.apps.recommend.config import RecommendConfig
from tuneforge.apps.recommend.data import Item, Split
from tuneforge.apps.recommend.train import StepLog
from tuneforge.apps.recommend.metrics import auc
from tuneforge.errors import TuneforgeError
from tuneforge.models.precision import Precision, autocast, resolve_precision
from tuneforge.training.progress import training_bar

# (history texts, item texts) of equal length -> (P,) relevance scores, one per pair
PairScorer = Callable[[list[str], list[str]], np.ndarray]


def _fp32_head(model: nn.Module) -> None:
    """Run the one-logit head in fp32 even under bf16 autocast: a bf16 logit near 3 has a step of 1/64, which
    made re-ranked candidates tie. The body keeps bf16 (the speed); the weights' names do not change."""
    head = getattr(model, "classifier", None) or getattr(model, "score", None)
    if head is None:
        return
    plain = head.forward

    def forward(*args, **kwargs):
        device = next(head.parameters()).device.type
        with torch.autocast(device, enabled=False):
            return plain(*(a.float() if torch.is_tensor(a) else a for a in args), **kwargs)

    head.forward = forward  # an instance attribute: nn.Module.__call__ finds it first


class CrossEncoder(nn.Module):
    """A Hugging Face encoder with a one-logit head (``AutoModelForSequenceClassification``, num_labels=1)."""

    def __init__(self, model: nn.Module, tokenizer) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        _fp32_head(model)

    @classmethod
    def load(cls, path: str | Path) -> CrossEncoder:
        """From a base encoder (the head is initialised fresh) or from a saved cross-encoder folder."""
        from transformers import AutoModelForSequenceClassification
        from transformers.utils import logging as hf_logging

        from tuneforge.models.backbones import load_tokenizer

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # "some weights were newly initialized": the head, expected
        try:
            model = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=1, dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise TuneforgeError(f"Could not load a cross-encoder from {path}: {exc}") from None
        finally:
            hf_logging.set_verbosity(verbosity)
        return cls(model, load_tokenizer(str(path), padding_side="right"))

    def forward(self, histories: list[str], texts: list[str], max_length: int) -> torch.Tensor:
        """(P,) logits of the pairs (histories[p], texts[p])."""
        batch = self.tokenizer(histories, texts, padding=True, truncation="longest_first", max_length=max_length,
                               return_tensors="pt")
        return self.model(**batch).logits[:, 0]

    @torch.no_grad()
    def score(self, histories: list[str], texts: list[str], max_length: int, precision: Precision = "fp32",
              batch_size: int = 64) -> np.ndarray:
        """(P,) logits, in batches sorted by length (less padding), returned in the input order."""
        was_training = self.training
        self.eval()
        order = sorted(range(len(texts)), key=lambda i: len(histories[i]) + len(texts[i]))
        out = np.empty(len(texts), dtype=np.float64)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            with autocast(precision):
                out[idx] = self([histories[i] for i in idx], [texts[i] for i in idx], max_length).float().numpy()
        self.train(was_training)
        return out

    def scorer(self, max_length: int, precision: Precision) -> PairScorer:
        return lambda histories, texts: self.score(histories, texts, max_length, precision)

    def save(self, folder: Path) -> None:
        """A Hugging Face folder (safetensors + tokenizer): ``AutoModelForSequenceClassification`` reads it."""
        self.model.save_pretrained(folder, safe_serialization=True)
        self.tokenizer.save_pretrained(folder)


def top_candidates(scores: np.ndarray, item_ids: list[str], skip: set[str], k: int) -> list[int]:
    """Indices of the ``k`` best-scored items not in ``skip``; ties in catalogue order (a stable sort)."""
    order = np.argsort(-scores, kind="stable")
    return [int(j) for j in order if item_ids[j] not in skip][:k]


def rerank_row(scores: np.ndarray, top: list[int], rerank: np.ndarray) -> np.ndarray:
    """A copy of one user's (N,) two-tower ``scores`` where the ``top`` items sit above every other item, in the
    order of their ``rerank`` scores; every other entry is unchanged."""
    out = scores.astype(np.float64)  # a copy
    if top:
        floor = float(out.max()) + 1.0
        out[top] = floor + (rerank - rerank.min())  # monotone in rerank, and above every untouched score
    return out


def rerank_matrix(base: np.ndarray, histories: list[str], skips: list[set[str]], item_ids: list[str],
                  items: dict[str, Item], pair_scorer: PairScorer, top_k: int) -> np.ndarray:
    """(U, N) scores: row u is :func:`rerank_row` of ``base[u]`` over its top ``top_k`` (``skips[u]`` left out);
    all pairs go to ``pair_scorer`` in one call."""
    tops = [top_candidates(base[u], item_ids, skips[u], top_k) for u in range(len(histories))]
    pairs_h = [histories[u] for u, top in enumerate(tops) for _ in top]
    pairs_t = [items[item_ids[j]].text for top in tops for j in top]
    scores = np.asarray(pair_scorer(pairs_h, pairs_t), dtype=np.float64) if pairs_h else np.empty(0)
    out, start = np.empty(base.shape, dtype=np.float64), 0
    for u, top in enumerate(tops):
        out[u] = rerank_row(base[u], top, scores[start:start + len(top)])
        start += len(top)
    return out


def evaluate_rerank(base: Callable[[list[str]], np.ndarray], pair_scorer: PairScorer, split: Split,
                    items: dict[str, Item], history_items: int, k: int, top_k: int) -> dict:
    """The re-ranked model's metrics on the same test users and candidates as :func:`evaluate_all`.

    NDCG@k and recall@k rank the catalogue by :func:`rerank_matrix`; AUC is the cross-encoder's own, over
    every logged test impression (a score offset per user would make a pooled AUC meaningless)."""
    from tuneforge.apps.recommend.data import history_text
    from tuneforge.apps.recommend.evaluate import evaluate_scores

    item_ids = list(items)
    users = sorted({r.user for r in split.test})
    texts = [history_text(split.history.get(u, []), items, history_items) for u in users]
    skips = [set(split.history.get(u, [])) for u in users]
    matrix = rerank_matrix(base(texts), texts, skips, item_ids, items, pair_scorer, top_k)
    metrics = evaluate_scores(matrix, users, split, item_ids, k)
    row = {u: n for n, u in enumerate(users)}
    impressions = pair_scorer([texts[row[r.user]] for r in split.test], [items[r.item].text for r in split.test])
    metrics["auc"] = auc([float(s) for s in impressions], [r.label for r in split.test])
    return {**metrics, "top_k": top_k}


def sample_negatives(positive: str, logged: tuple[str, ...], hard: list[str] | None, clicked: set[str],
                     item_ids: list[str], n: int, rng: random.Random) -> list[str]:
    """``n`` items the user did not click in train (fewer only when the catalogue runs out): first from
    ``hard`` (the two towers' candidates) or ``logged`` (shown, not clicked), then at random."""
    pool = [i for i in dict.fromkeys(hard if hard is not None else logged) if i != positive and i not in clicked]
    chosen = rng.sample(pool, min(n, len(pool)))
    if len(chosen) < n:
        taken = set(chosen)
        rest = [i for i in item_ids if i != positive and i not in clicked and i not in taken]
        chosen += rng.sample(rest, min(n - len(chosen), len(rest)))
    return chosen


def group_loss(logits: torch.Tensor, sizes: list[int], kind: str) -> torch.Tensor:
    """``logits`` (P,) are groups of ``sizes``, each the click first and then its negatives."""
    groups = torch.split(logits, sizes)
    if kind == "listwise":
        return torch.stack([-torch.log_softmax(g, dim=0)[0] for g in groups]).mean()
    labels = torch.cat([torch.tensor([1.0] + [0.0] * (s - 1)) for s in sizes])
    return nn.functional.binary_cross_entropy_with_logits(logits, labels)


@torch.enable_grad()  # a caller may have switched gradients off globally
def fit_reranker(model: CrossEncoder, examples: list, items: dict[str, Item], split: Split, cfg: RecommendConfig,
                 log_path: Path, progress: bool = True, hard: list[list[str]] | None = None) -> list[dict]:
    """The loop over ``examples`` (train.Example: user, history, positive, logged negatives); ``hard[e]`` are
    example e's two-tower candidates for ``negative_source: two_tower``. Returns the logged steps."""
    r = cfg.rerank
    rng = random.Random(r.seed)
    torch.manual_seed(r.seed)
    precision = resolve_precision(cfg.train.precision)
    clicked = {u: set(ids) for u, ids in split.history.items()}
    item_ids = list(items)
    indexed = list(range(len(examples)))
    per_epoch = math.ceil(len(examples) / r.batch_size)
    total = max(1, math.ceil(r.epochs * per_epoch))
    optimizer = torch.optim.AdamW(model.parameters(), lr=r.learning_rate, weight_decay=r.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / total)
    model.train()
    every = max(1, min(cfg.train.log_every, total // 5 or 1))
    with training_bar(progress) as bar, log_path.open("w", encoding="utf-8") as log_file:
        log = StepLog(bar, bar.add_task("re-ranker", total=total, loss="-", rate="-"), log_file, per_epoch, total,
                      every, "pairs_per_second")
        while log.step < total:
            order = rng.sample(indexed, len(indexed))
            for start in range(0, len(order), r.batch_size):
                if log.step >= total:
                    break
                batch = order[start:start + r.batch_size]
                groups = [[examples[e].positive, *sample_negatives(
                    examples[e].positive, examples[e].negatives if r.negative_source == "logged" else (),
                    hard[e] if r.negative_source == "two_tower" and hard is not None else None,
                    clicked.get(examples[e].user, set()), item_ids, r.negatives, rng)] for e in batch]
                histories = [examples[e].history for e, g in zip(batch, groups) for _ in g]
                texts = [items[i].text for g in groups for i in g]
                with autocast(precision):
                    logits = model(histories, texts, r.max_length)  # (P,)
                loss = group_loss(logits.float(), [len(g) for g in groups], r.loss)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                scheduler.step()
                log.record(loss.item(), len(texts))
    model.eval()
    return log.entries
