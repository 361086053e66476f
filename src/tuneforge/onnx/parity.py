"""The parity report written with every export: does the exported model predict what the run predicts?

Both models classify the same sample of the run's test split (a stratified sample of ``samples`` examples,
drawn with the run's seed, read with the same data code as training); the report gives the largest and the
mean absolute difference of any class probability, how often the two pick the same label, and the accuracy
of each. If the run's data cannot be read any more (moved files, a dataset package not installed), the check
runs on a few built-in sentences, without accuracies, and says so.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tuneforge.data.records import Example
from tuneforge.errors import TuneforgeError

FALLBACK_TEXTS = [
    "The flight was delayed for three hours and nobody told us anything.",
    "Thanks for the quick help at the gate, great crew!",
    "What time does boarding start for the morning flight?",
    "My bag is lost again, this is the worst service ever.",
    "ok",
    "I love this product, it works exactly as described and arrived early.",
    "The room was dirty and the staff were rude.",
    "Can I change my seat after check-in?",
]


def parity_examples(run: Any, samples: int, data_file: str | Path | None = None
                    ) -> tuple[list[Example], str, str | None]:
    """``(examples, where they came from, a warning or None)``; labelled unless the fallback was needed."""
    from tuneforge.data import read_examples, subsample_stratified

    cfg = run.config
    try:
        if data_file is not None:
            d = cfg.data
            examples = read_examples(Path(data_file), text_column=d.text_column, text_pair_column=d.text_pair_column,
                                     label_column=d.label_column)
            source = str(data_file)
        else:
            from tuneforge.data.source import load_splits

            splits = load_splits(cfg.data, cfg.train.seed)
            examples, source = splits.test, f"test split of {splits.name}"
    except (TuneforgeError, OSError, ImportError) as exc:
        if data_file is not None:  # asked for explicitly: a wrong path is the user's to fix
            raise
        warning = (f"the run's data could not be read ({str(exc).splitlines()[0][:300]}); the parity check ran on "
                   f"{len(FALLBACK_TEXTS)} built-in sentences instead, without accuracy. Give a labelled file with "
                   "--parity-data FILE for a check on your data.")
        return [Example(text=t) for t in FALLBACK_TEXTS], "built-in sentences", warning
    examples = [e for e in examples if e.label in run.labels]
    if samples < len(examples):
        examples = subsample_stratified(examples, samples, seed=cfg.train.seed)
        source += f" ({samples} of them, stratified, seed {cfg.train.seed})"
    return examples, source, None


def compare(reference: np.ndarray, exported: np.ndarray, examples: list[Example], labels: list[str]) -> dict:
    """The numbers of one report; accuracies are fractions, ``accuracy_difference`` = exported - run."""
    diff = np.abs(reference.astype(np.float64) - exported.astype(np.float64))
    report: dict[str, Any] = {"samples": len(examples), "max_abs_prob_diff": float(diff.max()) if diff.size else 0.0,
                              "mean_abs_prob_diff": float(diff.mean()) if diff.size else 0.0,
                              "same_label": float((reference.argmax(-1) == exported.argmax(-1)).mean())}
    if examples and all(e.label is not None for e in examples):
        truth = np.array([labels.index(e.label) for e in examples])
        run_acc, exp_acc = float((reference.argmax(-1) == truth).mean()), float((exported.argmax(-1) == truth).mean())
        report |= {"accuracy_run": run_acc, "accuracy_export": exp_acc, "accuracy_difference": exp_acc - run_acc}
    return report


def parity_report(run: Any, predictors: dict[str, Callable[[list[Example]], np.ndarray]], samples: int,
                  data_file: str | Path | None = None) -> dict:
    """``{"source": ..., "warning": ..., "models": {name: numbers}}`` for each exported model in ``predictors``
    (a name such as "model.onnx" -> a function giving its probabilities), against ``run.predict_proba``."""
    examples, source, warning = parity_examples(run, samples, data_file)
    reference = run.predict_proba(examples)
    models = {name: compare(reference, predict(examples), examples, run.labels) for name, predict in predictors.items()}
    return {"source": source, "warning": warning, "reference": f"{Path(run.dir).resolve()} (PyTorch, fp32)",
            "models": models}


def parity_table(report: dict):
    """The report as a rich table (printed by the CLI)."""
    from rich.table import Column, Table

    table = Table(Column("model", no_wrap=True), "n", "max |Δp|", "mean |Δp|", "same label", "run acc",
                  "export acc", "Δ acc", title=f"parity with the run: {report['source']}")
    for name, r in report["models"].items():
        acc = [f"{100 * r['accuracy_run']:.2f}", f"{100 * r['accuracy_export']:.2f}",
               f"{100 * r['accuracy_difference']:+.2f}"] if "accuracy_run" in r else ["-", "-", "-"]
        table.add_row(name, str(r["samples"]), f"{r['max_abs_prob_diff']:.1e}", f"{r['mean_abs_prob_diff']:.1e}",
                      f"{100 * r['same_label']:.1f}%", *acc)
    return table
