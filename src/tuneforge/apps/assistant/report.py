"""The evaluation as a table (markdown), for the terminal, eval.md and docs/ASSISTANT.md."""

from __future__ import annotations


def eval_table(metrics: dict, title: str = "") -> str:
    lines = [f"| {title or 'queries'} | retrieval | recall@1 | recall@5 | MRR |", "|---|---|---:|---:|---:|"]
    for name in ("heldout", "synthetic"):
        part = metrics.get(name) or {}
        for mode in ("bm25", "dense", "hybrid"):
            if mode in part:
                m = part[mode]
                lines.append(f"| {name} ({part['queries']}) | {mode} | {m['recall@1']:.3f} | {m['recall@5']:.3f} | "
                             f"{m['mrr']:.3f} |")
    return "\n".join(lines) + "\n"
