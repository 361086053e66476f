"""The k-shot protocol: ``tuneforge fewshot CONFIG --shots K --seeds S [--ensemble]``.

For each seed s = train.seed, train.seed + 1, ...: draw K examples of every class from the training split
(fewshot/sampler.py), train on them with ``tuneforge train``'s recipe (any method; a ``contrastive:``
section gives the SetFit-style recipe, ``augment:`` adds edited copies of the K examples), evaluate on the
whole test split, and record accuracy, macro-F1 and wall time. Reported: each seed, mean and standard
deviation (sample std, ddof=1) over seeds; with ``--ensemble`` also the test metrics of the seeds'
averaged probabilities.

Honesty: examples are sampled from the training split only, the test split is never sampled, seen or
selected on, and the validation data of each seed's run is its own K examples (a few-shot user has no
large validation set; nothing is selected on it unless early stopping is configured). The folder::

    runs/<name>-<K>shot-<timestamp>/
        config.yaml        the config as given (resolved)
        fewshot.json       shots, seeds, per-seed metrics and wall time, mean and std, ensemble
        summary.md         the same as a table
        seeds.png          each seed's test accuracy and macro-F1, the means, the ensemble
        data/test.jsonl    the whole test split
        data/seed-<s>.jsonl  the K-shot sample of seed s, with "id" = the example's index in the training split
        seed-<s>/          an ordinary run folder (tuneforge predict / eval / tuneforge.load)
"""

from __future__ import annotations

import json
import numbers
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape

from tuneforge.config import TrainConfig, dump_config
from tuneforge.data.records import Example
from tuneforge.data.source import load_splits
from tuneforge.errors import TuneforgeError
from tuneforge.fewshot.sampler import sample_k_shot
from tuneforge.recipes.runfolder import check_new_folder, new_run_dir, write_json
from tuneforge.recipes.train import as_config, train
from tuneforge.training.checkpoint import write_atomic_text

console = Console(stderr=True)


@dataclass
class FewShotResult:
    """What ``tuneforge.fewshot`` returns: the folder, the per-seed rows and the summary."""

    dir: Path
    shots: int
    seeds: list[dict[str, Any]]
    summary: dict[str, Any]
    ensemble: dict[str, Any] | None = None
    runs: list[Path] = field(default_factory=list)

    @property
    def markdown(self) -> str:
        return (self.dir / "summary.md").read_text(encoding="utf-8")


def fewshot(config: TrainConfig | dict | str | Path, overrides: list[str] | None = None, *, shots: int = 8,
            seeds: int = 5, ensemble: bool = False, output_dir: str | Path | None = None,
            progress: bool = True) -> FewShotResult:
    """Run the k-shot protocol (module docstring) and return its :class:`FewShotResult`."""
    _check_counts(shots, seeds)
    if seeds < 1:
        raise TuneforgeError(f"--seeds {seeds}: give at least one seed.")
    cfg = as_config(config, overrides)
    # The k-shot sample is the training set: data.max_train_samples (a cap for ordinary training, e.g. the 48
    # tweets of configs/airline-pet.yaml) would only shrink the pool it is drawn from, and report a class as too
    # small that the training split has plenty of. data.max_eval_samples has nothing to cap (validation = sample).
    capped = {k: v for k in ("max_train_samples", "max_eval_samples") if (v := getattr(cfg.data, k)) is not None}
    if capped:
        console.print("note: " + " and ".join(f"data.{k}={v}" for k, v in capped.items()) + " ignored: each seed "
                      f"trains on its {shots} examples per class, drawn from the whole training split.")
    splits = load_splits(cfg.data.model_copy(update={"max_train_samples": None}), cfg.train.seed)
    d = cfg.data
    if d.dataset is None and d.validation is None and d.test is not None:
        # The validation share split off data.train is never used (each seed validates on its own sample), so it
        # goes back into the pool: 8 examples per class and a test file make --shots 8 (it said '"x" has 7').
        splits.train = splits.train + splits.validation
    seed_values = [cfg.train.seed + i for i in range(seeds)]
    try:  # fails early on too few examples
        samples = {s: sample_k_shot(splits.train, shots, s) for s in seed_values}
    except TuneforgeError as exc:
        if d.dataset is None and d.validation is None and d.test is None:
            raise TuneforgeError(f"{exc} (The training split is data.train less the share data.validation_fraction="
                                 f"{d.validation_fraction} held out as the test split, since the config gives no "
                                 "data.test; with a test file of your own, every example of data.train is in the "
                                 "pool.)") from None
        raise
    root = Path(output_dir) if output_dir is not None else new_run_dir(f"{cfg.name}-{shots}shot", None)
    check_new_folder(root, "--output-dir")  # a file, a non-empty folder, a folder inside a file: before any work
    existed = root.is_dir()
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(dump_config(cfg), encoding="utf-8")
    test_file = _write_examples(root / "data" / "test.jsonl", splits.test)
    pair = cfg.data.text_pair_column is not None
    rows, runs = [], []
    for s in seed_values:
        train_file = _write_examples(root / "data" / f"seed-{s}.jsonl", [splits.train[i] for i in samples[s]],
                                     ids=samples[s])
        data = {"train": str(train_file), "validation": str(train_file), "test": str(test_file),
                "text_column": "text", "label_column": "label", "max_length": cfg.data.max_length,
                "text_pair_column": "text_pair" if pair else None}
        seed_cfg = cfg.model_dump(mode="json") | {"data": data, "output_dir": str(root / f"seed-{s}"),
                                                   "name": f"{cfg.name}-{shots}shot-seed{s}"}
        seed_cfg["train"] = seed_cfg["train"] | {"seed": s}
        console.print(f"[bold]seed {s}[/]: {shots} examples per class, {len(samples[s])} in all")
        started = time.perf_counter()
        try:
            run = train(seed_cfg, progress=progress)
        except TuneforgeError:
            if not runs:  # the config is wrong for every seed: leave the folder as it was (empty or absent)
                _empty(root, remove=not existed)
            raise
        seconds = time.perf_counter() - started
        m = run.metrics
        rows.append({"seed": s, "accuracy": m["test.accuracy"], "macro_f1": m["test.macro_f1"],
                     "train_seconds": m["train.seconds"], "wall_seconds": seconds, "run": str(run.dir)})
        runs.append(run.dir)
    summary = {"accuracy": _mean_std([r["accuracy"] for r in rows]),
               "macro_f1": _mean_std([r["macro_f1"] for r in rows]),
               "wall_seconds": _mean_std([r["wall_seconds"] for r in rows])}
    ensembled = _ensemble(runs, splits.test, splits.labels) if ensemble else None
    result = FewShotResult(dir=root, shots=shots, seeds=rows, summary=summary, ensemble=ensembled, runs=runs)
    write_json(root / "fewshot.json", {"shots": shots, "seeds": seed_values, "data": splits.source or splits.name,
                                       "test_examples": len(splits.test), "train_split_examples": len(splits.train),
                                       "per_seed": rows, "summary": summary, "ensemble": ensembled})
    write_atomic_text(root / "summary.md", _markdown(cfg.name, shots, rows, summary, ensembled))
    from tuneforge.evaluation.plots import plot_seeds

    plot_seeds(rows, root / "seeds.png", f"{cfg.name}: {shots} per class, {len(rows)} seeds", ensembled)
    console.print(f"few-shot folder: {escape(str(root))}")
    return result


def _empty(root: Path, remove: bool) -> None:
    """Delete what this command wrote into ``root`` (it was checked to be empty or absent), and ``root`` itself
    when it made it."""
    import shutil

    if remove:
        shutil.rmtree(root, ignore_errors=True)
        return
    for child in root.iterdir():
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _check_counts(shots: Any, seeds: Any) -> None:
    """``shots`` and ``seeds`` are counts. A list of seeds (``seeds=[100, 101]``) or a float failed with a
    TypeError deep inside; say what the arguments mean instead."""
    problems = []
    if isinstance(seeds, bool) or not isinstance(seeds, numbers.Integral):
        hint = ""
        if isinstance(seeds, (list, tuple, range)) and len(seeds) and all(isinstance(s, int) for s in seeds) \
                and list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))):
            hint = f" (for seeds {list(seeds)}: seeds={len(seeds)} with the override train.seed={seeds[0]})"
        problems.append(f"seeds={seeds!r}: give how many seeds to run, an integer: the seeds are train.seed, "
                        f"train.seed + 1, ...{hint}.")
    if isinstance(shots, bool) or not isinstance(shots, numbers.Integral):
        problems.append(f"shots={shots!r}: give how many examples of each class to draw, an integer, e.g. shots=8.")
    if problems:
        raise TuneforgeError("tuneforge.fewshot: " + " ".join(problems))


def _mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def _write_examples(path: Path, examples: list[Example], ids: list[int] | None = None) -> Path:
    lines = []
    for k, e in enumerate(examples):
        row: dict[str, Any] = {"id": ids[k]} if ids is not None else {}
        row |= {"text": e.text, "label": e.label}
        if e.text_pair is not None:
            row["text_pair"] = e.text_pair
        lines.append(json.dumps(row, ensure_ascii=False))
    write_atomic_text(path, "\n".join(lines) + "\n")
    return path


def _ensemble(runs: list[Path], test: list[Example], labels: list[str]) -> dict[str, Any]:
    """Average the seeds' test probabilities (columns matched by label name) and score the average."""
    from tuneforge.evaluation.metrics import classification_metrics
    from tuneforge.run import Run

    total = np.zeros((len(test), len(labels)), dtype=np.float64)
    for folder in runs:
        run = Run.load(folder)
        probs = run.predict_proba(test)
        total[:, [labels.index(name) for name in run.labels]] += probs
    y_true = [labels.index(e.label) for e in test]
    m = classification_metrics(y_true, total.argmax(-1).tolist(), labels)
    return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "seeds": len(runs)}


def _markdown(name: str, shots: int, rows: list[dict], summary: dict, ensembled: dict | None) -> str:
    lines = [f"# {name}: {shots} examples per class, {len(rows)} seeds", "",
             "| seed | test accuracy | test macro-F1 | wall time (s) |", "|---:|---:|---:|---:|"]
    lines += [f"| {r['seed']} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {r['wall_seconds']:.1f} |" for r in rows]
    a, f, w = summary["accuracy"], summary["macro_f1"], summary["wall_seconds"]
    lines.append(f"| mean ± std | {a['mean']:.4f} ± {a['std']:.4f} | {f['mean']:.4f} ± {f['std']:.4f} | "
                 f"{w['mean']:.1f} ± {w['std']:.1f} |")
    if ensembled:
        lines.append(f"| ensemble of {ensembled['seeds']} | {ensembled['accuracy']:.4f} | {ensembled['macro_f1']:.4f} "
                     "| |")
    return "\n".join(lines) + "\n"
