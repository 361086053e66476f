"""Ensembles of finished runs: ``tuneforge ensemble RUN_DIR RUN_DIR ... --input test.jsonl``.

The ensemble's class distribution is the mean of its M members' (a "deep ensemble", Lakshminarayanan,
Pritzel & Blundell 2017, "Simple and Scalable Predictive Uncertainty Estimation using Deep Ensembles"):

    p_ens(y | x) = (1 / M) * sum_m p_m(y | x)        prediction: argmax_y p_ens(y | x)

Members are runs of the same task trained with other seeds, methods or backbones (or their ONNX exports).
They must know the same labels; the order may differ (columns are matched by name, the first run's order
wins). Members are loaded and scored one at a time, so memory holds one model, and every member's own
metrics are reported next to the ensemble's: the gain is measured against the mean and the best member.

The report folder (``output_dir``): ``ensemble.json`` (members, ensemble, gains, inputs), ``ensemble.md``
(the table), ``ensemble.png`` (accuracy and macro-F1 of each member and of the ensemble) and
``confusion_matrix.png`` (the ensemble's).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tuneforge.data.records import Example
from tuneforge.data.validate import check_known_labels
from tuneforge.errors import TuneforgeError

console = Console(stderr=True)


@dataclass
class Ensemble:
    """What :func:`ensemble` measured. ``members[i]`` and ``metrics`` hold accuracy, macro_f1, loss,
    per_class, confusion_matrix and count, like ``tuneforge eval``; ``probabilities`` is the ensemble's
    (N, K) distribution with columns in ``labels`` order."""

    runs: list[Path]
    labels: list[str]
    members: list[dict[str, Any]]
    metrics: dict[str, Any]
    probabilities: np.ndarray
    data: str  # where the examples came from, in words
    dir: Path | None = None  # the report folder, when one was written

    @property
    def gain(self) -> dict[str, float]:
        """The ensemble's accuracy / macro-F1 minus the mean member's and the best member's (fractions)."""
        out = {}
        for key in ("accuracy", "macro_f1"):
            scores = [m[key] for m in self.members]
            out[f"{key}_vs_mean_member"] = self.metrics[key] - statistics.mean(scores)
            out[f"{key}_vs_best_member"] = self.metrics[key] - max(scores)
        return out


def member_labels(path: Path) -> list[str]:
    """A run's label names without loading its model (the usual error for what is not a finished run)."""
    from tuneforge.recipes.runfolder import read_json
    from tuneforge.run import load

    labels_file = path / "model" / "labels.json"
    if labels_file.is_file():
        return list(read_json(labels_file))
    return list(load(path).labels)  # an ONNX export, or Run.load's message for a missing / unfinished run


def check_members(run_dirs: Sequence[str | Path]) -> tuple[list[Path], list[str]]:
    """The run folders and their common label names (the first run's order); every problem at once."""
    paths = [Path(p) for p in run_dirs]
    if len(paths) < 2:
        raise TuneforgeError(f"An ensemble needs at least two runs; got {len(paths)}. Give several run folders of "
                             "the same task: tuneforge ensemble RUN_A RUN_B [RUN_C ...] --input test.jsonl.")
    seen: dict[Path, Path] = {}
    for path in paths:
        if path.resolve() in seen:
            raise TuneforgeError(f"{path} is given twice (as {seen[path.resolve()]} too); it would count double. "
                                 "Give each run once.")
        seen[path.resolve()] = path
    labels = {path: member_labels(path) for path in paths}
    first = labels[paths[0]]
    odd = [path for path in paths[1:] if set(labels[path]) != set(first) or len(labels[path]) != len(first)]
    if odd:
        listing = "; ".join(f"{p}: {', '.join(labels[p])}" for p in [paths[0], *odd])
        raise TuneforgeError(f"These runs do not share one label set, so their probabilities cannot be averaged "
                             f"({listing}). Ensemble only runs trained on the same task and labels.")
    return paths, first


def _examples(paths: list[Path], data: str | Path | Sequence[Example] | None) -> tuple[list[Example], str]:
    """The labelled examples to score: given ones, a file (read with the first run's column names), or the
    runs' common test split."""
    from tuneforge.config import TrainConfig, load_config
    from tuneforge.data import read_examples

    configs = {p: load_config(TrainConfig, path=p / "config.yaml") for p in paths if (p / "config.yaml").is_file()}
    if data is not None and not isinstance(data, (str, Path)):
        examples, source = list(data), f"{len(data)} given examples"
    elif data is not None:
        file = Path(data)
        if not file.exists():
            raise TuneforgeError(f"--input {file.resolve()} does not exist. Give a labelled file (.jsonl, .json, "
                                 ".csv, .tsv) that none of the runs trained on.")
        d = configs[paths[0]].data if paths[0] in configs else None
        columns = dict(text_column=d.text_column, text_pair_column=d.text_pair_column,
                       label_column=d.label_column, run=paths[0]) if d is not None else {}  # hint: rename
        examples, source = read_examples(file, **columns), str(file)
    else:
        examples, source = _common_test_split(paths, configs)
    unlabelled = sum(1 for e in examples if e.label is None)
    if not examples or unlabelled:
        raise TuneforgeError(f"{source}: {unlabelled} of {len(examples)} examples have no label; an ensemble is "
                             "scored against labels. Give a labelled test file with --input.")
    return examples, source


def _common_test_split(paths: list[Path], configs: dict[Path, Any]) -> tuple[list[Example], str]:
    from tuneforge.data.source import load_splits

    if len(configs) < len(paths):
        raise TuneforgeError("Some members are exports without a training config, so there is no test split to "
                             "default to: give a labelled test file with --input FILE.")
    tests, source = {}, ""
    for path, cfg in configs.items():
        splits = load_splits(cfg.data, cfg.train.seed)
        tests[path] = [(e.text, e.text_pair, e.label) for e in splits.test]
        source = source or f"test split of {splits.name} ({splits.source})"
    first = tests[paths[0]]
    differ = [str(p) for p in paths[1:] if tests[p] != first]
    if differ:
        raise TuneforgeError(f"The runs' test splits differ ({', '.join(differ)} against {paths[0]}): they split "
                             "their data differently (another seed or file), so a test example of one may be a "
                             "training example of another. Give one labelled test file none of them trained on "
                             "with --input FILE.")
    return [Example(text=t, text_pair=p, label=label) for t, p, label in first], source


def ensemble(run_dirs: Sequence[str | Path], data: str | Path | Sequence[Example] | None = None, *,
             output_dir: str | Path | None = None, batch_size: int = 64, precision: str | None = None,
             progress: bool = True) -> Ensemble:
    """Average the class probabilities of several runs on labelled ``data`` and measure each member and the
    ensemble (see the module docstring).

    ``data``: a labelled file, a list of :class:`~tuneforge.data.records.Example`, or None for the runs'
    common test split. ``output_dir``: write the report there (nothing is written when None).
    ``precision``: each member's own ``train.precision`` by default.
    """
    from tuneforge.evaluation.metrics import classification_metrics, mean_loss
    from tuneforge.run import load

    paths, labels = check_members(run_dirs)
    folder = Path(output_dir) if output_dir is not None else None
    if folder is not None:  # a file, a non-empty folder, a folder inside a file: before scoring anything
        from tuneforge.recipes.runfolder import check_new_folder

        check_new_folder(folder, "--output-dir")
    examples, source = _examples(paths, data)
    check_known_labels(examples, labels, source)
    y_true = [labels.index(e.label) for e in examples]

    def score(probs: np.ndarray) -> dict[str, Any]:
        metrics = classification_metrics(y_true, probs.argmax(-1).tolist(), labels)
        metrics["loss"] = mean_loss(probs, y_true)
        return metrics

    total = np.zeros((len(examples), len(labels)), dtype=np.float64)
    members = []
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=console, disable=not progress)
    with bar:
        task = bar.add_task(f"scoring {len(examples):,} examples", total=len(paths))
        for path in paths:
            run = load(path, precision=precision)
            order = [run.labels.index(name) for name in labels]  # this member's columns in the common order
            probs = np.asarray(run.predict_proba(examples, batch_size=batch_size), dtype=np.float64)[:, order]
            total += probs
            cfg = getattr(run, "config", None)
            members.append({"run": str(path), "method": cfg.method.name if cfg is not None else "onnx",
                            "seed": cfg.train.seed if cfg is not None else None, **score(probs)})
            del run
            bar.advance(task)
    probabilities = total / len(paths)
    result = Ensemble(runs=paths, labels=labels, members=members, metrics=score(probabilities),
                      probabilities=probabilities.astype(np.float32), data=source)
    if folder is not None:
        write_report(result, folder)
    return result


def default_output_dir() -> Path:
    return Path("runs") / f"ensemble-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def markdown_table(result: Ensemble) -> str:
    rows = ["| member | method | seed | accuracy | macro-F1 | loss |", "|---|---|---|---|---|---|"]
    for m in result.members:
        rows.append(f"| {m['run']} | {m['method']} | {m['seed'] if m['seed'] is not None else '-'} | "
                    f"{m['accuracy']:.4f} | {m['macro_f1']:.4f} | {m['loss']:.4f} |")
    e, g = result.metrics, result.gain
    rows.append(f"| **ensemble (mean of {len(result.members)})** | | | **{e['accuracy']:.4f}** | "
                f"**{e['macro_f1']:.4f}** | {e['loss']:.4f} |")
    return ("\n".join(rows) + f"\n\n{e['count']:,} examples: {result.data}. Gain in accuracy: "
            f"{100 * g['accuracy_vs_mean_member']:+.2f} points over the mean member, "
            f"{100 * g['accuracy_vs_best_member']:+.2f} over the best; macro-F1: "
            f"{100 * g['macro_f1_vs_mean_member']:+.2f} / {100 * g['macro_f1_vs_best_member']:+.2f}.\n")


def write_report(result: Ensemble, folder: Path) -> None:
    from tuneforge.evaluation.plots import plot_confusion, plot_members
    from tuneforge.recipes.runfolder import write_json
    from tuneforge.training.checkpoint import write_atomic_text

    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "ensemble.json", {"runs": [str(p) for p in result.runs], "data": result.data,
                                          "labels": result.labels, "ensemble": result.metrics,
                                          "gain": result.gain, "members": result.members})
    write_atomic_text(folder / "ensemble.md", markdown_table(result))
    names = [f"{Path(m['run']).name}" for m in result.members] + ["ensemble"]
    plot_members(names, {key: [m[key] for m in result.members] + [result.metrics[key]]
                         for key in ("accuracy", "macro_f1")}, folder / "ensemble.png",
                 f"{len(result.members)} members and their ensemble ({result.metrics['count']:,} examples)")
    plot_confusion(result.metrics["confusion_matrix"], result.labels, folder / "confusion_matrix.png",
                   f"ensemble: accuracy {result.metrics['accuracy']:.3f}")
    result.dir = folder
