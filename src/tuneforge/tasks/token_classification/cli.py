"""``tuneforge eval RUN FILE`` for a token-classification run: entity scores per type, written as JSON."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def eval_command(run_dir: Path, file: Path, output: Path | None, out: Console, err: Console) -> None:
    """Read and check ``file`` first (a bad file fails fast, before the model loads), then score the run."""
    from tuneforge.recipes.runfolder import flatten, write_json
    from tuneforge.run import load
    from tuneforge.tasks.token_classification.files import read_token_examples

    examples, warnings = read_token_examples(file)
    for warning in warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}")
    run = load(run_dir)
    metrics = flatten("", {"eval": run.evaluate(examples)})
    metrics["eval.file"] = str(file)
    target = output or run.dir / f"eval-{file.stem}.json"
    write_json(target, metrics)
    print_entity_metrics(metrics, out)
    err.print(f"wrote {target}")


def print_entity_metrics(metrics: dict, out: Console, split: str = "eval") -> None:
    out.print(f"entities: precision [bold]{metrics[f'{split}.precision']:.4f}[/]  recall "
              f"[bold]{metrics[f'{split}.recall']:.4f}[/]  F1 [bold]{metrics[f'{split}.f1']:.4f}[/]  macro-F1 "
              f"{metrics[f'{split}.macro_f1']:.4f}  tag accuracy {metrics[f'{split}.accuracy']:.4f}  "
              f"({metrics[f'{split}.count']} sentences, {metrics[f'{split}.entities']} entities)")
    table = Table("type", "precision", "recall", "f1", "support")
    for name, c in metrics[f"{split}.per_type"].items():
        table.add_row(name, f"{c['precision']:.3f}", f"{c['recall']:.3f}", f"{c['f1']:.3f}", str(c["support"]))
    out.print(table)
