"""The zero-shot recipe: classify with a prompt and a verbalizer, no training. ``tuneforge zeroshot CONFIG``.

Setup (data, language model, prompt), score the validation and test splits, write a run folder:

    runs/<name>-<timestamp>/
        config.yaml            the resolved config, prompt section included
        run.json               status, data sizes, precision, versions
        labels.json            the verbalizer's labels in class order
        prompt.json            template, verbalizer, each word's tokens, the prompt as the model sees it,
                               content-free probabilities when calibrating
        metrics.json           validation.*, test.accuracy, test.macro_f1, test.per_class, zeroshot.texts_per_second
        confusion_matrix.png   on the test split
        predictions-test.jsonl one line per test text: label, prediction, class probabilities
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape

from tuneforge.config import TrainConfig, dump_config
from tuneforge.data.records import DatasetSplits, Example
from tuneforge.data.source import load_splits
from tuneforge.data.splits import subsample_stratified
from tuneforge.errors import TuneforgeError
from tuneforge.evaluation.metrics import classification_metrics, mean_loss
from tuneforge.evaluation.plots import plot_confusion
from tuneforge.prompting.scoring import PromptScorer, load_language_model
from tuneforge.prompting.template import Template
from tuneforge.recipes.runfolder import check_new_folder, environment, flatten, new_run_dir, update_status, write_json
from tuneforge.recipes.train import as_config, start_loop
from tuneforge.training.checkpoint import write_atomic_text

console = Console(stderr=True)

EXAMPLE_PROMPT = ("prompt:\n  template: \"{text}\\nSentiment: {answer}\"\n"
                  "  verbalizer: {negative: negative, neutral: neutral, positive: positive}")


@dataclass
class ZeroShotResult:
    """A finished zero-shot run: its folder, metrics and label names."""

    dir: Path
    metrics: dict[str, Any]
    labels: list[str]


def zeroshot(config: TrainConfig | dict | str | Path, overrides: list[str] | None = None, *,
             limit: int | None = None, progress: bool = True) -> ZeroShotResult:
    """Classify the validation and test splits with ``config.prompt`` and no training.

    ``limit`` evaluates a stratified sample of that many examples of each split, for quick looks.
    """
    cfg = as_config(config, overrides)
    if cfg.prompt is None:
        raise TuneforgeError("tuneforge zeroshot needs a prompt: section in the config, a template and a word for "
                             f"each label, e.g.\n{EXAMPLE_PROMPT}\n(see configs/airline-zeroshot.yaml).")
    if limit is not None and limit < 1:
        raise TuneforgeError(f"--limit {limit}: give a positive number of examples per split.")
    loop = cfg.train
    device, precision = start_loop(loop)
    splits = load_splits(cfg.data, loop.seed)
    labels = list(cfg.prompt.verbalizer)
    check_labels(splits, labels)
    check_pairs(splits, cfg.prompt.template, cfg.data.text_pair_column)
    evaluated = {"validation": splits.validation, "test": splits.test}
    if limit is not None:
        evaluated = {name: subsample_stratified(examples, limit, seed=loop.seed) if limit < len(examples)
                     else examples for name, examples in evaluated.items()}
        if splits.test is splits.validation:  # no test file: keep the test split the validation data
            evaluated["test"] = evaluated["validation"]
    run_dir = new_run_dir(cfg.name, cfg.output_dir)
    check_new_folder(run_dir, "output_dir")  # a file, a non-empty folder, a folder inside a file: before any work

    lm = load_language_model(cfg.model)  # refuses a model without its LM head before any folder is made
    scorer = PromptScorer(lm, cfg.prompt, max_length=cfg.data.max_length, batch_size=loop.batch_size,
                          precision=precision, device=device)
    scorer.check_words()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(dump_config(cfg.model_copy(update={"output_dir": run_dir})),
                                         encoding="utf-8")
    write_json(run_dir / "labels.json", labels)
    update_status(run_dir, status="running", recipe="zeroshot", name=cfg.name,
                  started=time.strftime("%Y-%m-%dT%H:%M:%S"), limit=limit, model_kind=lm.kind,
                  data={"name": splits.name, "source": splits.source,
                        **{name: len(examples) for name, examples in evaluated.items()}},
                  precision=precision, device=str(device), environment=environment())
    console.print(f"[bold]{escape(cfg.name)}[/]: zero-shot on {escape(lm.path)} ({lm.kind} LM), precision "
                  f"{precision}, {len(evaluated['validation']):,} validation and {len(evaluated['test']):,} "
                  "test texts")
    try:
        return _score(cfg, run_dir, scorer, evaluated, labels, limit, precision, progress)
    except BaseException as exc:
        update_status(run_dir, status="interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                      error=str(exc)[:2000])
        raise


def _score(cfg: TrainConfig, run_dir: Path, scorer: PromptScorer, evaluated: dict[str, list[Example]],
           labels: list[str], limit: int | None, precision: str, progress: bool) -> ZeroShotResult:
    if cfg.prompt is not None and cfg.prompt.calibrate:
        scorer.calibrate()
    write_json(run_dir / "prompt.json", scorer.describe())
    results: dict[str, dict[str, Any]] = {}
    texts = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    probs: dict[str, np.ndarray] = {}
    for name, examples in evaluated.items():
        if name == "test" and examples is evaluated["validation"]:
            probs[name] = probs["validation"]  # no test file: the test split is the validation data
        else:
            probs[name] = scorer.predict_proba(examples, progress=progress, description=name)
            texts += len(examples)
        y_true = [labels.index(e.label) for e in examples]
        results[name] = classification_metrics(y_true, probs[name].argmax(-1).tolist(), labels)
        results[name]["loss"] = mean_loss(probs[name], y_true)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started  # all threads' CPU time: steadier than seconds on a busy machine
    metrics = flatten("", {
        "zeroshot": {"seconds": seconds, "cpu_seconds": cpu_seconds, "texts": texts,
                     "texts_per_second": texts / max(seconds, 1e-9),
                     "precision": precision, "model_kind": scorer.lm.kind, "limit": limit},
        **results,
    })
    write_json(run_dir / "metrics.json", metrics)
    test = results["test"]
    plot_confusion(test["confusion_matrix"], labels, run_dir / "confusion_matrix.png",
                   f"{cfg.name}: zero-shot test accuracy {test['accuracy']:.3f}")
    write_predictions(run_dir / "predictions-test.jsonl", evaluated["test"], probs["test"], labels)
    update_status(run_dir, status="complete", finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
    return ZeroShotResult(dir=run_dir, metrics=metrics, labels=labels)


def check_labels(splits: DatasetSplits, labels: list[str]) -> None:
    """Every label in the data needs a verbalizer word: the verbalizer's keys are the classes."""
    missing: dict[str, set[str]] = {}
    for name in ("train", "validation", "test"):
        for example in getattr(splits, name):
            if example.label is not None and example.label not in labels:
                missing.setdefault(example.label, set()).add(name)
    if missing:
        listed = ", ".join(f'"{label}" (in {"/".join(sorted(where))})' for label, where in sorted(missing.items()))
        first = min(missing)
        raise TuneforgeError(f"prompt.verbalizer has no word for the label(s) {listed}; its keys are "
                             f"{', '.join(labels)}. Add a word for each, e.g. prompt.verbalizer.{first}: WORD, "
                             "or check data.label_column.")


def check_pairs(splits: DatasetSplits, template: str, pair_column: str | None) -> None:
    """{text_pair} in the template and a second text in the data go together."""
    uses_pair = Template(template).uses_pair
    has_pairs = any(e.text_pair is not None for e in splits.validation + splits.test)
    if uses_pair and not has_pairs:
        raise TuneforgeError("prompt.template has a {text_pair} slot, but the data has no second text. Set "
                             "data.text_pair_column to the column that holds it, or remove {text_pair}.")
    if has_pairs and not uses_pair:
        raise TuneforgeError(f"The data has a second text (data.text_pair_column = {pair_column}), but "
                             "prompt.template has no {text_pair} slot, so the model would never read it. Add "
                             '{text_pair}, e.g. "{text} ? {answer}, {text_pair}".')


def write_predictions(path: Path, examples: Sequence[Example], probs: np.ndarray, labels: list[str]) -> None:
    lines = []
    for example, row in zip(examples, probs):
        record = {"text": example.text, **({"text_pair": example.text_pair} if example.text_pair else {}),
                  "label": example.label, "predicted": labels[int(row.argmax())],
                  "scores": {name: round(float(p), 6) for name, p in zip(labels, row)}}
        lines.append(json.dumps(record, ensure_ascii=False))
    write_atomic_text(path, "\n".join(lines) + "\n")
