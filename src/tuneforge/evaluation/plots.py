"""Pictures of a run: the loss curve and the confusion matrix (PNG, matplotlib without a display)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402


def plot_loss(log: Sequence[dict], evals: Sequence[dict], path: Path, metric: str) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = [r["step"] for r in log if "loss" in r]
    ax.plot(steps, [r["loss"] for r in log if "loss" in r], label="training loss", color="tab:blue")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    if evals:
        ax.plot([e["step"] for e in evals], [e["loss"] for e in evals], "o-", label="validation loss",
                color="tab:orange")
        if metric != "loss":
            ax2 = ax.twinx()
            ax2.plot([e["step"] for e in evals], [e[metric] for e in evals], "s--", color="tab:green",
                     label=f"validation {metric}")
            ax2.set_ylabel(metric)
            ax2.legend(loc="upper right")
    ax.legend(loc="upper left" if evals else "best")
    ax.set_title("Training")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion(matrix: Sequence[Sequence[int]], labels: Sequence[str], path: Path, title: str) -> None:
    n = len(labels)
    fig, ax = plt.subplots(figsize=(1.2 * n + 2.5, 1.2 * n + 2))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    peak = max((max(row) for row in matrix), default=0)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(matrix[i][j]), ha="center", va="center",
                    color="white" if matrix[i][j] > peak / 2 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_slices(field: str, result: dict, path: Path, overall_accuracy: float) -> None:
    """Accuracy and macro-F1 per slice (``eval --by``), the overall accuracy as a line, support in the labels."""
    import numpy as np

    names = list(result["slices"])
    rows = [result["slices"][n] for n in names]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(names) + 2), 3.8))
    ax.bar(x - 0.2, [r["accuracy"] for r in rows], 0.4, label="accuracy", color="tab:blue")
    ax.bar(x + 0.2, [r["macro_f1"] for r in rows], 0.4, label="macro-F1", color="tab:orange")
    ax.axhline(overall_accuracy, color="black", linewidth=0.8, linestyle="--", label="overall accuracy")
    ax.set_xticks(x, [f"{n}\n(n={r['count']})" for n, r in zip(names, rows)], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.legend(loc="lower right", fontsize=8)
    gap = result["gap"]
    ax.set_title(f"by {field}: accuracy gap {gap['accuracy']:.3f} ({gap['best']} best, {gap['worst']} worst)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_members(names: Sequence[str], scores: dict[str, Sequence[float]], path: Path, title: str) -> None:
    """Grouped bars: each score (accuracy, macro-F1) of each named model; the last bar group is highlighted
    (an ensemble after its members)."""
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(names) + 2), 4))
    width = 0.8 / len(scores)
    for k, (key, values) in enumerate(scores.items()):
        xs = [i + (k - (len(scores) - 1) / 2) * width for i in range(len(names))]
        bars = ax.bar(xs, values, width, label=key, color=f"C{k}")
        bars[-1].set_edgecolor("black")
        bars[-1].set_linewidth(1.5)
        for x, v in zip(xs, values):
            ax.text(x, v, f"{v:.3f}", ha="center", va="bottom", fontsize=7)
    low = min(min(v) for v in scores.values())
    ax.set_ylim(max(0.0, low - 0.1), 1.0)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
    ax.legend(loc="lower right")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_seeds(rows: Sequence[dict], path: Path, title: str, ensemble: dict | None = None) -> None:
    """Few-shot runs: test accuracy and macro-F1 of each seed, their means, and the ensemble if any."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for k, (metric, color) in enumerate((("accuracy", "tab:blue"), ("macro_f1", "tab:orange"))):
        values = [r[metric] for r in rows]
        ax.scatter([k] * len(values), values, color=color, alpha=0.7, zorder=3)
        for r in rows:
            ax.annotate(str(r["seed"]), (k, r[metric]), xytext=(6, 0), textcoords="offset points", fontsize=7)
        mean = sum(values) / len(values)
        ax.hlines(mean, k - 0.25, k + 0.25, color=color, label=f"mean {metric} {mean:.3f}")
        if ensemble:
            ax.scatter([k + 0.3], [ensemble[metric]], marker="*", s=120, color=color, zorder=3,
                       label=f"ensemble {metric} {ensemble[metric]:.3f}")
    ax.set_xticks([0, 1], ["test accuracy", "test macro-F1"])
    ax.set_xlim(-0.6, 1.9)
    ax.set_ylabel("score (each dot one seed)")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
