"""``tuneforge recommend train CONFIG``: fit the two towers on the clicks, evaluate against the baselines, save.

The loss is the softmax over in-batch negatives (Henderson et al. 2017; Yi et al. 2019, "Sampling-bias-corrected
neural modeling"): for a batch of B clicks (history h_b, clicked item p_b), the candidate columns are the B
clicked items plus, with ``logged_negatives``, one item each user was shown and did not click; with cosine
scores s and temperature tau,

    loss = -1/B sum_b log( exp(s(h_b, p_b) / tau) / sum_c exp(s(h_b, c) / tau) )

A column that user b clicked elsewhere in train is masked out of b's row: it is not a negative for b.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from tuneforge.apps.recommend.config import RecommendConfig
from tuneforge.apps.recommend.data import Interaction, Item, Split, history_text, read_interactions, read_items, \
    time_split
from tuneforge.apps.recommend.encoder import TextEncoder
from tuneforge.apps.recommend.evaluate import evaluate_all
from tuneforge.config import dump_config, load_config
from tuneforge.errors import TuneforgeError
from tuneforge.models.backbones import resolve_model
from tuneforge.models.precision import autocast, resolve_precision
from tuneforge.recipes.runfolder import environment, new_run_dir, update_status, write_json
from tuneforge.training.progress import training_bar


@dataclass(frozen=True)
class Example:
    user: str
    history: str  # the user's clicks before this one, as text
    positive: str  # the clicked item
    negatives: tuple[str, ...]  # items the user was shown in train and did not click


def load_data(cfg: RecommendConfig) -> tuple[dict[str, Item], list[Interaction], Split]:
    items = read_items(cfg.data.items)
    rows = read_interactions(cfg.data.interactions, items)
    s = cfg.split
    return items, rows, time_split(rows, s.mode, s.last_n, s.cut, s.test_fraction)


def training_examples(split: Split, items: dict[str, Item], history_items: int) -> list[Example]:
    """One example per train click that has earlier clicks of the same user (its history)."""
    earlier: dict[str, list[str]] = {}
    shown: dict[str, list[str]] = {}
    for r in split.train:
        if not r.label:
            shown.setdefault(r.user, []).append(r.item)
    examples = []
    for r in split.train:  # ordered by time: the history holds only clicks before this one
        if not r.label:
            continue
        before = earlier.setdefault(r.user, [])
        if before:
            examples.append(Example(r.user, history_text(before, items, history_items), r.item,
                                    tuple(shown.get(r.user, ()))))
        before.append(r.item)
    return examples


def step_loss(encoder: TextEncoder, batch: list[Example], items: dict[str, Item], clicked: dict[str, set[str]],
              cfg: RecommendConfig, rng: random.Random) -> torch.Tensor:
    columns = list(dict.fromkeys([e.positive for e in batch] + ([rng.choice(e.negatives) for e in batch
                                                                 if e.negatives]
                                                                if cfg.train.logged_negatives else [])))
    users = encoder([e.history for e in batch], cfg.data.history_max_length)  # (B, H)
    things = encoder([items[c].text for c in columns], cfg.data.item_max_length)  # (C, H)
    logits = users @ things.T / cfg.train.temperature  # (B, C)
    target = torch.tensor([columns.index(e.positive) for e in batch])
    mask = torch.tensor([[c != e.positive and c in clicked[e.user] for c in columns] for e in batch])
    logits = logits.masked_fill(mask, float("-inf"))
    return torch.nn.functional.cross_entropy(logits, target)


class StepLog:
    """The recommender loops' logging: the loss averaged over ``every`` steps (and the last step) goes to
    log.jsonl (flushed, for tail -f), to the returned list and to the progress bar, with ``rate_key`` per second."""

    def __init__(self, bar, task, log_file, per_epoch: int, total: int, every: int, rate_key: str) -> None:
        self.bar, self.task, self.file = bar, task, log_file
        self.per_epoch, self.total, self.every, self.rate_key = per_epoch, total, every, rate_key
        self.entries: list[dict] = []
        self.window: list[float] = []
        self.step, self.seen, self.started = 0, 0, time.perf_counter()

    def record(self, loss: float, count: int) -> None:
        self.step += 1
        self.seen += count
        self.window.append(loss)
        if self.step % self.every == 0 or self.step == self.total:
            rate = self.seen / (time.perf_counter() - self.started)
            entry = {"step": self.step, "epoch": round(self.step / self.per_epoch, 3),
                     "loss": sum(self.window) / len(self.window), self.rate_key: rate}
            self.entries.append(entry)
            self.file.write(json.dumps(entry) + "\n")
            self.file.flush()
            self.window = []
            self.bar.update(self.task, completed=self.step, loss=f"{entry['loss']:.4f}", rate=f"{rate:.1f}")


@torch.enable_grad()  # a caller may have switched gradients off globally (torch.set_grad_enabled(False))
def fit(encoder: TextEncoder, examples: list[Example], items: dict[str, Item], split: Split, cfg: RecommendConfig,
        log_path: Path, progress: bool = True) -> list[dict]:
    """The loop: shuffle, batch, loss, AdamW with linear decay; returns the logged steps."""
    t = cfg.train
    rng = random.Random(t.seed)
    torch.manual_seed(t.seed)
    precision = resolve_precision(t.precision)
    clicked = {u: set(ids) for u, ids in split.history.items()}
    per_epoch = math.ceil(len(examples) / t.batch_size)
    total = max(1, math.ceil(t.epochs * per_epoch))
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=t.learning_rate, weight_decay=t.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / total)
    encoder.train()
    with training_bar(progress) as bar, log_path.open("w", encoding="utf-8") as log_file:
        log = StepLog(bar, bar.add_task("recommend", total=total, loss="-", rate="-"), log_file, per_epoch, total,
                      t.log_every, "samples_per_second")
        while log.step < total:
            order = rng.sample(examples, len(examples))
            for start in range(0, len(order), t.batch_size):
                batch = order[start:start + t.batch_size]
                if len(batch) < 2 or log.step >= total:  # one click alone has no in-batch negative
                    continue
                with autocast(precision):
                    loss = step_loss(encoder, batch, items, clicked, cfg, rng)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                scheduler.step()
                log.record(loss.item(), len(batch))
    encoder.eval()
    return log.entries


def model_scorer(encoder: TextEncoder, item_vectors: torch.Tensor, cfg: RecommendConfig, precision: str):
    def score(texts: list[str]):
        users = encoder.encode(texts, cfg.data.history_max_length, precision)
        return (users @ item_vectors.T).numpy()  # (U, N) cosine similarities
    return score


def ranking_name(cfg: RecommendConfig) -> str:
    """Which ranking a run's ``rank`` uses, in words (metrics.json, README, the CLI)."""
    if cfg.rerank.enabled:
        return f"two-tower + cross-encoder re-rank of the top {cfg.rerank.top_k}"
    return "two-tower"


def fit_and_score_reranker(encoder: TextEncoder, vectors: torch.Tensor, examples: list[Example],
                           items: dict[str, Item], split: Split, cfg: RecommendConfig, run_dir: Path,
                           progress: bool) -> tuple[dict, dict]:
    """Train the cross-encoder (rerank.py) on the train clicks, score the re-ranked two towers, save it to
    run_dir/reranker (its log to run_dir/rerank_log.jsonl); returns (metrics, training facts with the time it
    added)."""
    from tuneforge.apps.recommend.rerank import CrossEncoder, evaluate_rerank, fit_reranker, top_candidates

    r = cfg.rerank
    precision = resolve_precision(cfg.train.precision)
    started = time.perf_counter()
    hard = None
    if r.negative_source == "two_tower":  # each click's own candidates: what the re-ranker will be shown
        ids = list(items)
        clicked = {u: set(c) for u, c in split.history.items()}
        scores = (encoder.encode([e.history for e in examples], cfg.data.history_max_length, precision)
                  @ vectors.T).numpy()  # (E, N)
        hard = [[ids[j] for j in top_candidates(scores[n], ids, clicked.get(e.user, set()), r.top_k)]
                for n, e in enumerate(examples)]
    torch.manual_seed(r.seed)  # the fresh head
    model = CrossEncoder.load(resolve_model(r.model or cfg.model))
    log = fit_reranker(model, examples, items, split, cfg, run_dir / "rerank_log.jsonl", progress, hard)
    trained = time.perf_counter()
    metrics = evaluate_rerank(model_scorer(encoder, vectors, cfg, precision), model.scorer(r.max_length, precision),
                              split, items, cfg.data.history_items, cfg.k, r.top_k)
    model.save(run_dir / "reranker")
    return metrics, {"examples": len(examples), "steps": log[-1]["step"], "first_loss": log[0]["loss"],
                     "last_loss": log[-1]["loss"], "pairs_per_second": log[-1]["pairs_per_second"],
                     "train_seconds": round(trained - started, 1),
                     "eval_seconds": round(time.perf_counter() - trained, 1)}


def train(config: str | Path | dict | RecommendConfig, overrides: list[str] | None = None, progress: bool = True):
    """Train, evaluate and save a recommender; returns the loaded :class:`Recommender` of the run folder."""
    from safetensors.torch import save_file

    from tuneforge.apps.recommend.report import plot_metrics, write_readme
    from tuneforge.apps.recommend.run import Recommender
    from tuneforge.evaluation.plots import plot_loss

    if isinstance(config, RecommendConfig):
        cfg = load_config(RecommendConfig, data=config.model_dump(mode="json"), overrides=overrides)
    elif isinstance(config, dict):
        cfg = load_config(RecommendConfig, data=config, overrides=overrides)
    else:
        cfg = load_config(RecommendConfig, path=config, overrides=overrides)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    items, rows, split = load_data(cfg)  # every data problem surfaces before the model loads
    examples = training_examples(split, items, cfg.data.history_items)
    if len(examples) < 2:
        raise TuneforgeError(f"{cfg.data.interactions}: {len(examples)} train click(s) with an earlier click of the "
                             "same user; the model learns from a user's history and their next click, so it needs "
                             "users with two clicks or more in the train part.")
    run_dir = new_run_dir(cfg.name, cfg.output_dir)
    if (run_dir / "metrics.json").exists():
        raise TuneforgeError(f"{run_dir} holds a finished run already; choose another output_dir.")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(dump_config(cfg), encoding="utf-8")
    precision = resolve_precision(cfg.train.precision)
    update_status(run_dir, status="running", recipe="recommend", model=cfg.model, precision=precision,
                  environment=environment())
    try:
        encoder = TextEncoder.load(resolve_model(cfg.model))
        write_json(run_dir / "split.json", {**split.describe(), "train_examples": len(examples)})
        item_ids = list(items)
        # the encoder as loaded, before any training: does training on the clicks help at all?
        untrained = encoder.encode([items[i].text for i in item_ids], cfg.data.item_max_length, precision)
        untrained = evaluate_all(model_scorer(encoder, untrained, cfg, precision), split, items,
                                 cfg.data.history_items, cfg.k)["model"]
        started = time.perf_counter()
        log = fit(encoder, examples, items, split, cfg, run_dir / "log.jsonl", progress)
        seconds = time.perf_counter() - started
        vectors = encoder.encode([items[i].text for i in item_ids], cfg.data.item_max_length, precision)
        metrics = evaluate_all(model_scorer(encoder, vectors, cfg, precision), split, items, cfg.data.history_items,
                               cfg.k)
        metrics["untrained"] = untrained
        metrics["train"] = {"examples": len(examples), "steps": log[-1]["step"], "first_loss": log[0]["loss"],
                            "last_loss": log[-1]["loss"], "samples_per_second": log[-1]["samples_per_second"],
                            "seconds": round(seconds, 1)}
        if cfg.rerank.enabled:
            metrics["rerank"], metrics["rerank_train"] = fit_and_score_reranker(encoder, vectors, examples, items,
                                                                                split, cfg, run_dir, progress)
        metrics["ranking"] = ranking_name(cfg)
        metrics["split"] = split.describe()
        encoder.save(run_dir / "encoder")
        save_file({"embeddings": vectors.contiguous()}, str(run_dir / "item_embeddings.safetensors"))
        write_json(run_dir / "items.json", [{"item": i, "title": items[i].title, "tags": list(items[i].tags),
                                             "text": items[i].text} for i in item_ids])
        write_json(run_dir / "histories.json", {u: ids for u, ids in _all_histories(rows).items()})
        plot_loss(log, [], run_dir / "loss.png", "loss")
        plot_metrics(metrics, cfg.k, run_dir / "metrics.png", cfg.name)
        write_json(run_dir / "metrics.json", metrics)  # last: its presence marks a finished run
        write_readme(run_dir, cfg)
    except BaseException:
        update_status(run_dir, status="failed")
        raise
    update_status(run_dir, status="complete")
    return Recommender.load(run_dir)


def add_reranker(run_dir: str | Path, overrides: list[str] | None = None, *, replace: bool = False,
                 progress: bool = True):
    """Train a cross-encoder re-ranker for a finished two-tower run, without training the towers again.

    ``overrides`` set ``rerank.*`` only (``rerank.enabled`` becomes true); the run's own config, data files and
    split are used. The new re-ranker is trained and scored in a staging folder; only then are reranker/,
    rerank_log.jsonl, config.yaml, metrics.json, metrics.png and README.md of the run replaced, so a failed or
    interrupted attempt leaves the run as it was. Returns the reloaded :class:`Recommender`."""
    import shutil

    from safetensors.torch import load_file

    from tuneforge.apps.recommend.report import plot_metrics, write_readme
    from tuneforge.apps.recommend.run import Recommender
    from tuneforge.recipes.runfolder import read_json
    from tuneforge.training.checkpoint import write_atomic_text

    run_dir = Path(run_dir)
    if not (run_dir / "metrics.json").is_file() or not (run_dir / "config.yaml").is_file():
        raise TuneforgeError(f"{run_dir} is not a finished recommender run (no metrics.json or config.yaml); train "
                             "one with `tuneforge recommend train CONFIG`.")
    for override in overrides or []:
        key = override.split("=", 1)[0].strip()
        if "=" not in override or not key.startswith("rerank."):
            raise TuneforgeError(f'"{override}": only rerank.* settings can change on a finished run (the two '
                                 "towers and their data stay as trained), e.g. rerank.epochs=2 rerank.top_k=20.")
    if (run_dir / "reranker").exists() and not replace:
        raise TuneforgeError(f"{run_dir} has a re-ranker already (reranker/); pass --replace to train a new one "
                             "(the old one stays until the new one is trained and saved).")
    cfg = load_config(RecommendConfig, path=run_dir / "config.yaml",
                      overrides=[*(overrides or []), "rerank.enabled=true"])
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    items, _, split = load_data(cfg)
    saved_ids = [row["item"] for row in read_json(run_dir / "items.json")]
    if saved_ids != list(items):
        raise TuneforgeError(f"{cfg.data.items} no longer holds the items the run was trained on ({len(saved_ids)} "
                             f"saved in items.json, {len(items)} in the file now, or another order); restore the "
                             "file or train a new run.")
    examples = training_examples(split, items, cfg.data.history_items)
    encoder = TextEncoder.load(run_dir / "encoder")
    vectors = load_file(str(run_dir / "item_embeddings.safetensors"))["embeddings"]
    staging = run_dir / ".rerank-staging"
    shutil.rmtree(staging, ignore_errors=True)  # a leftover of an interrupted attempt
    staging.mkdir()
    try:
        rerank_metrics, rerank_train = fit_and_score_reranker(encoder, vectors, examples, items, split, cfg, staging,
                                                              progress)
        metrics = read_json(run_dir / "metrics.json")
        metrics.update(rerank=rerank_metrics, rerank_train=rerank_train, ranking=ranking_name(cfg))
        old = run_dir / ".reranker-old"
        shutil.rmtree(old, ignore_errors=True)
        if (run_dir / "reranker").exists():
            (run_dir / "reranker").rename(old)
        (staging / "reranker").rename(run_dir / "reranker")
        (staging / "rerank_log.jsonl").replace(run_dir / "rerank_log.jsonl")
        write_atomic_text(run_dir / "config.yaml", dump_config(cfg))
        write_json(run_dir / "metrics.json", metrics)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    plot_metrics(metrics, cfg.k, run_dir / "metrics.png", cfg.name)
    write_readme(run_dir, cfg)
    return Recommender.load(run_dir)


def _all_histories(rows: list[Interaction]) -> dict[str, list[str]]:
    from tuneforge.apps.recommend.data import histories

    return histories(rows)
