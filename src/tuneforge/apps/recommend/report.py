"""What a recommender run folder shows: a bar chart of the model against the baselines, and a README."""

from __future__ import annotations

from pathlib import Path

from tuneforge.apps.recommend.config import RecommendConfig

METHODS = ("model", "rerank", "untrained", "tfidf", "popularity")


def plot_metrics(metrics: dict, k: int, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["auc", f"ndcg@{k}", f"recall@{k}"]
    methods = [m for m in METHODS if m in metrics]
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(methods)
    for n, method in enumerate(methods):
        values = [metrics[method][name] or 0.0 for name in names]
        bars = ax.bar([x + n * width for x in range(len(names))], values, width, label=method)
        ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.set_xticks([x + width * (len(methods) - 1) / 2 for x in range(len(names))], names)
    ax.set_ylim(0, 1.05)
    ax.set_title(f"{title}: {metrics['model']['users'] if 'model' in metrics else ''} test users".strip())
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


README = """# Recommender run `{name}`

Made by `tuneforge recommend train` (docs/RECOMMEND.md).

- config.yaml: the resolved config (every default filled in); data paths point at the CSV files.
- split.json: the time-based split ({mode}) and its counts.
- metrics.json: AUC, NDCG@{k}, recall@{k} of the model, of the same encoder before training ("untrained") and
  of the popularity and TF-IDF baselines on the same test rows and candidates; train loss and throughput.
  metrics.png shows them.
- log.jsonl, loss.png: the training loss.
- encoder/: the shared encoder of both towers, a Hugging Face folder (safetensors + tokenizer); vectors are
  the mean of the last hidden states over real tokens, L2-normalised; scores are cosine similarities.
- item_embeddings.safetensors (tensor "embeddings", N x H) in the order of items.json.
- histories.json: each user's clicked items, oldest first (all rows), what `rank --user` reads.
- ranking used by `rank`: {ranking}.{rerank}

    tuneforge recommend rank {dir} --user USER --k 10
    tuneforge recommend rank {dir} --history "text of what the user liked"
    tuneforge recommend eval {dir}
"""


RERANK = """
- reranker/: the cross-encoder, a Hugging Face folder (AutoModelForSequenceClassification, one logit; safetensors
  + tokenizer) reading "history [SEP] item text"; it re-scores the two towers' top {top_k} per user.
  metrics.json "rerank" holds the re-ranked metrics next to "model" (the two towers alone; AUC of "rerank" is
  the cross-encoder's own over the logged test impressions), "rerank_train" its training and the time it
  added; rerank_log.jsonl its loss. `rank --no-rerank` ranks by the two towers alone."""


def write_readme(run_dir: Path, cfg: RecommendConfig) -> None:
    from tuneforge.apps.recommend.train import ranking_name

    extra = RERANK.format(top_k=cfg.rerank.top_k) if cfg.rerank.enabled else ""
    (run_dir / "README.md").write_text(README.format(name=cfg.name, mode=cfg.split.mode, k=cfg.k, dir=run_dir,
                                                     ranking=ranking_name(cfg), rerank=extra), encoding="utf-8")
