"""``tuneforge recommend train | eval | rank | demo`` (registered on the main CLI in one line)."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer

from tuneforge.errors import TuneforgeError

recommend_app = typer.Typer(help="Text-based recommender: two-tower encoder trained on click logs, against "
                                 "popularity and TF-IDF baselines (docs/RECOMMEND.md).", no_args_is_help=True)


def _summary(metrics: dict, k: int) -> str:
    lines = [f"{'':12}{'AUC':>8}{f'NDCG@{k}':>10}{f'recall@{k}':>11}"]
    for method in ("model", "rerank", "untrained", "tfidf", "popularity"):
        if method in metrics:
            m = metrics[method]
            auc = f"{m['auc']:.4f}" if m["auc"] is not None else "-"
            lines.append(f"{method:12}{auc:>8}{m[f'ndcg@{k}']:>10.4f}{m[f'recall@{k}']:>11.4f}")
    if "rerank" in metrics:
        extra = metrics.get("rerank_train")
        lines.append(f"(rerank = model + cross-encoder re-rank of the top {metrics['rerank']['top_k']}"
                     + (f"; it added {extra['train_seconds']:.0f} s of training and {extra['eval_seconds']:.0f} s of "
                        "scoring" if extra else "") + ")")
    users = next(metrics[m]["users"] for m in ("model", "tfidf") if m in metrics)
    lines.append(f"({users} test users with a click; split {metrics['split']['mode']}, "
                 f"{metrics['split']['test_rows']} test rows)")
    if "ranking" in metrics:
        lines.append(f"ranking used by `rank`: {metrics['ranking']}")
    return "\n".join(lines)


@recommend_app.command("train")
def train(
    config: Annotated[Path, typer.Argument(help="Recommender config (YAML), e.g. configs/recommend-demo.yaml; "
                                                "see `tuneforge config show recommend`.")],
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides, e.g. train.epochs=2 "
                                                                  "split.mode=time.", show_default=False)] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Train the two towers on the click log, evaluate against both baselines, write a run folder."""
    from tuneforge.apps.recommend.train import train as train_recipe

    if "=" in str(config) and not config.exists():
        raise TuneforgeError(f'"{config}" looks like an override; the config file comes first: '
                             f"tuneforge recommend train CONFIG.yaml {config}")
    rec = train_recipe(config, list(overrides or []), progress=not quiet)
    typer.echo(_summary(rec.metrics, rec.cfg.k))
    typer.echo(f"run folder: {rec.dir}")


@recommend_app.command("eval")
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A finished recommender run folder.")],
    output: Annotated[Optional[Path], typer.Option(help="Where to write the metrics (default RUN_DIR/eval.json).")
                      ] = None,
) -> None:
    """Score the run again on its config's CSV files (same split), with both baselines."""
    from tuneforge.apps.recommend.run import Recommender
    from tuneforge.recipes.runfolder import write_json

    rec = Recommender.load(run_dir)
    metrics = rec.evaluate()
    target = output or run_dir / "eval.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    write_json(target, metrics)
    typer.echo(_summary(metrics, rec.cfg.k))
    typer.echo(f"wrote {target}", err=True)


@recommend_app.command("rank")
def rank(
    run_dir: Annotated[Path, typer.Argument(help="A finished recommender run folder.")],
    user: Annotated[Optional[str], typer.Option(help="A user of the log: ranked from their clicks, which are left "
                                                     "out of the list.")] = None,
    history: Annotated[Optional[str], typer.Option(help="Or a text describing what the user liked.")] = None,
    k: Annotated[int, typer.Option(help="How many items.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per item.")] = False,
    rerank: Annotated[Optional[bool], typer.Option("--rerank/--no-rerank", help="Re-score the top candidates with "
                                                   "the run's cross-encoder (default: when the run has one).",
                                                   show_default=False)] = None,
) -> None:
    """The top K items for a user or a history text."""
    from tuneforge.apps.recommend.run import Recommender

    if (user is None) == (history is None):
        raise TuneforgeError("Say whom to rank for: --user U (a user of the log) or --history TEXT; one of them.")
    if k < 1:
        raise TuneforgeError("--k must be at least 1.")
    rec = Recommender.load(run_dir)
    ranked = rec.rank(user=user, history=history, k=k, rerank=rerank)
    reranked = bool(ranked) and "rerank_score" in ranked[0]
    typer.echo(f"ranking: {rec.ranking if reranked else 'two-tower'}", err=True)
    if as_json:
        sys.stdout.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ranked))
        return
    if user is not None:
        typer.echo(f"history of {user}: {rec.history_of(user)[:300]}", err=True)
    for n, r in enumerate(ranked, 1):
        cross = "" if not reranked else f"{r['rerank_score']:>9.4f}  " if r["rerank_score"] is not None else \
            f"{'-':>9}  "
        typer.echo(f"{n:>3}. {cross}{r['score']:.4f}  {r['item']}  {r['title'][:90]}")


@recommend_app.command("rerank")
def rerank(
    run_dir: Annotated[Path, typer.Argument(help="A finished recommender run folder.")],
    overrides: Annotated[Optional[list[str]], typer.Argument(help="rerank.key=value settings, e.g. rerank.epochs=2 "
                                                                  "rerank.top_k=20 (see `tuneforge config show "
                                                                  "recommend`).", show_default=False)] = None,
    replace: Annotated[bool, typer.Option(help="Train a new re-ranker where the run has one already.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Add a cross-encoder re-ranker to a finished run, without training the two towers again."""
    from tuneforge.apps.recommend.train import add_reranker

    rec = add_reranker(run_dir, list(overrides or []), replace=replace, progress=not quiet)
    typer.echo(_summary(rec.metrics, rec.cfg.k))
    typer.echo(f"run folder: {rec.dir} (reranker/, metrics.json and README.md updated)")


@recommend_app.command("demo")
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the simulated data (OUT/data, rewritten) and the run "
                                           "(OUT/run-<time>).")] = Path("runs/recommend-demo"),
    model: Annotated[str, typer.Option(help="Encoder: an alias or a local Hugging Face folder.")] = "minilm",
    users: Annotated[int, typer.Option(help="Simulated users.")] = 200,
    impressions: Annotated[int, typer.Option(help="Items shown to each user.")] = 30,
    items_per_topic: Annotated[int, typer.Option(help="Chatterbot conversations per category (15 categories).")
                               ] = 30,
    seed: Annotated[int, typer.Option(help="Seed of the simulation.")] = 0,
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides of "
                                                                  "configs/recommend-demo.yaml, e.g. "
                                                                  "train.epochs=2.", show_default=False)] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Simulated users on real item texts (chatterbot conversations): train, compare with both baselines."""
    from tuneforge.apps.recommend.demo import write_demo_data
    from tuneforge.apps.recommend.train import train as train_recipe

    for name, value in (("--users", users), ("--impressions", impressions), ("--items-per-topic", items_per_topic)):
        if value < 2:
            raise TuneforgeError(f"{name} must be at least 2.")
    paths = write_demo_data(out / "data", users=users, impressions=impressions, items_per_topic=items_per_topic,
                            seed=seed)
    typer.echo(f"simulated {users} users x {impressions} impressions; data in {out / 'data'} (the users' liked "
               f"topics: {paths['likes']})", err=True)
    shipped = Path("configs/recommend-demo.yaml")
    if not shipped.exists():  # run from elsewhere than the repository root: the source checkout's copy
        shipped = Path(__file__).resolve().parents[4] / "configs" / "recommend-demo.yaml"
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    rec = train_recipe(shipped, [f"model={model}", f"data.items={paths['items']}",
                                 f"data.interactions={paths['interactions']}",
                                 f"output_dir={out / f'run-{stamp}'}", *(overrides or [])], progress=not quiet)
    typer.echo(_summary(rec.metrics, rec.cfg.k))
    typer.echo(f"run folder: {rec.dir} (metrics.png, README.md)")
