"""``tuneforge``: train, zeroshot, predict, eval, ensemble, datasets, config.

User errors (:class:`TuneforgeError`) print as one paragraph and exit with code 2, no traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from tuneforge.apps.monitor.cli import monitor_app
from tuneforge.apps.recommend.cli import recommend_app
from tuneforge.apps.assistant.cli import assistant_app
from tuneforge.errors import TuneforgeError

app = typer.Typer(help="Adapt pretrained language models to your task: fine-tune, evaluate, predict.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
datasets_app = typer.Typer(help="Built-in offline datasets.", no_args_is_help=True)
config_app = typer.Typer(help="Recipe config schemas.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
app.add_typer(config_app, name="config")
app.add_typer(monitor_app, name="monitor")
app.add_typer(recommend_app, name="recommend")
app.add_typer(assistant_app, name="assistant")
out = Console()
err = Console(stderr=True)


@app.command(context_settings={"allow_extra_args": False})
def train(
    config: Annotated[Optional[Path], typer.Argument(help="Training config (YAML). Not needed with --resume.")] = None,
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides, e.g. train.epochs=1 "
                                                                  "method.r=16.", show_default=False)] = None,
    resume: Annotated[Optional[Path], typer.Option(help="Continue the interrupted run in this folder from its "
                                                        "last checkpoint.")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Fine-tune a classifier and write a run folder (config, metrics, log, plots, model)."""
    from tuneforge.recipes.train import train as train_recipe

    if config is None and resume is None:
        raise TuneforgeError("Give a config file (tuneforge train configs/airline-lora.yaml) or "
                             "--resume RUN_DIR.")
    config, overrides = _config_and_overrides(config, overrides, resume, "train")
    run = train_recipe(config, overrides, resume=resume, progress=not quiet)
    from tuneforge.training.distributed import is_main

    if is_main():  # under torchrun: one summary, from rank 0
        out.print(run.summary())


def _config_and_overrides(config: Path | None, overrides: list[str] | None, resume: Path | None,
                          command: str, both: str = "") -> tuple[Path | None, list[str]]:
    """The CONFIG argument and the overrides as the recipe takes them. Typer fills CONFIG with the first word, so
    with --resume the first key=value lands there (``--resume RUN train.epochs=5``): it is an override, not a file
    to look for. A config file given with --resume would be ignored (the run keeps its own config.yaml): refused,
    with ``both`` as the message where the command words it its own way."""
    overrides = list(overrides or [])
    if config is None:
        return None, overrides
    looks_like_override = "=" in str(config) and not config.exists()
    if resume is not None:
        if looks_like_override:
            return None, [str(config), *overrides]
        raise TuneforgeError(both or f"--resume {resume} continues that run with its own config.yaml, so {config} "
                             f"would be ignored; give only key=value overrides: tuneforge {command} --resume "
                             f"{resume} train.epochs=5")
    if looks_like_override:
        raise TuneforgeError(f'"{config}" looks like an override; the config file comes first: '
                             f"tuneforge {command} CONFIG.yaml {config}")
    return config, overrides


@app.command(context_settings={"allow_extra_args": False})
def pretrain(
    config: Annotated[Optional[Path], typer.Argument(help="Pretraining config (YAML); see configs/minilm-mlm.yaml "
                                                          "and `tuneforge config show pretrain`.")] = None,
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides, e.g. train.max_steps=100.",
                                                             show_default=False)] = None,
    resume: Annotated[Optional[Path], typer.Option(help="Continue the interrupted run in this folder.")] = None,
    init_only: Annotated[bool, typer.Option(help="Write the model as initialised, untrained (the baseline "
                                                 "without pretraining).")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Pretrain a masked or causal LM (from scratch or continued); write a run folder whose model/ `train` takes."""
    from tuneforge.recipes.pretrain import pretrain as pretrain_recipe

    if config is None and resume is None:
        raise TuneforgeError("Give a config file (tuneforge pretrain configs/minilm-mlm.yaml) or --resume RUN_DIR.")
    config, overrides = _config_and_overrides(config, overrides, resume, "pretrain")
    run_dir = pretrain_recipe(config, overrides, resume=resume, init_only=init_only, progress=not quiet)
    out.print(f"model folder: [bold]{run_dir / 'model'}[/] (tuneforge train CONFIG model={run_dir / 'model'})")


@app.command("lr-find")
def lr_find(
    config: Annotated[Path, typer.Argument(help="Training config (YAML): model, method, data, batch size.")],
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides, e.g. method.r=16.",
                                                             show_default=False)] = None,
    steps: Annotated[int, typer.Option(help="Steps of the test (one batch each).")] = 100,
    start_lr: Annotated[float, typer.Option(help="Learning rate of the first step.")] = 1e-7,
    end_lr: Annotated[float, typer.Option(help="Learning rate of the last step (the test stops earlier if the "
                                                "loss diverges).")] = 1.0,
    output: Annotated[Optional[Path], typer.Option(help="Folder for lr_find.json and lr_find.png (default "
                                                        "runs/lr-find-<name>-<timestamp>).")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Learning-rate range test: train with an exponentially growing rate, plot the loss, suggest a rate."""
    from tuneforge.recipes.lr_find import lr_find as lr_find_recipe

    if "=" in str(config) and not config.exists():
        raise TuneforgeError(f'"{config}" looks like an override; the config file comes first: '
                             f"tuneforge lr-find CONFIG.yaml {config}")
    result = lr_find_recipe(config, list(overrides or []), steps=steps, start_lr=start_lr, end_lr=end_lr,
                            output_dir=output, progress=not quiet)
    s = result.suggestions
    if result.suggested is None:
        out.print(f"the loss diverged after {len(result.lrs)} steps, too early for a suggestion: lower --end-lr "
                  f"or --start-lr. Plot: [bold]{result.dir / 'lr_find.png'}[/]")
        return
    out.print(f"suggested learning rate [bold]{result.suggested:.2e}[/] (steepest descent of the loss; minimum / 10: "
              f"{s['minimum_over_10']:.2e}); set it with train.learning_rate={result.suggested:.2e}. "
              f"Plot: [bold]{result.dir / 'lr_find.png'}[/]")


@app.command()
def tune(
    config: Annotated[Optional[Path], typer.Argument(help="Training config (YAML) with a search: section (ranges "
                                                          "per field path). Not needed with --resume.")] = None,
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides for every trial, e.g. "
                                                                  "train.epochs=1.", show_default=False)] = None,
    trials: Annotated[Optional[int], typer.Option(help="Trials in all (default: search.trials).")] = None,
    output: Annotated[Optional[Path], typer.Option(help="Tune folder (default runs/tune-<name>-<timestamp>).")
                      ] = None,
    resume: Annotated[Optional[Path], typer.Option(help="Continue the study in this tune folder.")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Hyperparameter search with Optuna: train a trial per sample, prune bad ones, write best.yaml."""
    from tuneforge.tune import tune as tune_recipe

    config, overrides = _config_and_overrides(
        config, overrides, resume, "tune",
        both=f"Give a config or --resume, not both: a resumed study keeps its own {resume / 'config.yaml'} (the "
             f"{config} given here would be ignored). Change it with key=value overrides: tuneforge tune --resume "
             f"{resume} train.epochs=2" if resume is not None else "")
    result = tune_recipe(config, overrides, trials=trials, output_dir=output, resume=resume, progress=not quiet)
    out.print((result.dir / "trials.md").read_text(encoding="utf-8"))
    if result.best_config is None:
        out.print(f"no trial finished (all pruned or failed); see {result.dir / 'trials.md'}")
        return
    out.print(f"best validation {result.metric} [bold]{result.best_value:.4f}[/] with {result.best_params}; "
              f"train it with: tuneforge train {result.best_config}")


def _read_input_texts(path: Path, run_dir: Path, text_column: str = "text", text_pair_column: str | None = None
                      ) -> tuple[list[str], list[str | None] | None]:
    """Texts (and second texts, for a pair run) from a .jsonl/.json/.csv/.tsv file, read with the run's own
    ``text_column`` and ``text_pair_column`` (a missing one is named with the run ``run_dir``'s column, the
    file's columns and the rename to make), or a plain .txt file (one text per line, UTF-8)."""
    from tuneforge.data import read_examples
    from tuneforge.data.formats import read_text

    if not path.exists():
        raise TuneforgeError(f"--input {path.resolve()} does not exist.")
    if path.suffix.lower() == ".txt":
        if text_pair_column is not None:
            raise TuneforgeError(f'--input {path}: this run classifies pairs of texts ("{text_column}" and '
                                 f'"{text_pair_column}"); a .txt file holds one text per line. Give a .jsonl, '
                                 f".csv or .tsv file with both columns.")
        text = read_text(path, f"--input {path}")  # UTF-8 (a BOM dropped), or an error naming the line
        texts = [line.strip() for line in text.splitlines() if line.strip()]
        if not texts:
            raise TuneforgeError(f"--input {path}: no text in it (every line is empty). Put one text per line.")
        return texts, None
    examples = read_examples(path, text_column=text_column, text_pair_column=text_pair_column,
                             require_label=False, run=run_dir)
    return [e.text for e in examples], ([e.text_pair for e in examples] if text_pair_column else None)


def _run_columns(run_dir: Path) -> tuple[str, str | None]:
    """The run's ``data.text_column`` and ``data.text_pair_column`` from its config.yaml, without loading the
    model (so a bad --input fails fast); the defaults when the folder has no readable config (loading the run
    then says what is wrong with it)."""
    import yaml

    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        config = None
    data = config.get("data") if isinstance(config, dict) else None
    data = data if isinstance(data, dict) else {}
    return str(data.get("text_column") or "text"), data.get("text_pair_column") or None


PARALLEL_HELP = ("How the CPU cores are used: batches (one forward pass per core side by side, one thread each; "
                 "the faster for classifiers) or ops (one pass at a time split across the cores). docs/EXPORT.md.")


@app.command()
def predict(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder.")],
    text: Annotated[Optional[list[str]], typer.Option("--text", "-t", help="A text to classify (repeatable).")] = None,
    input: Annotated[Optional[Path], typer.Option("--input", "-i", help="File of texts: .txt (one per line), "
                                                                       ".jsonl/.csv/.tsv (run's text column).")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write JSON lines here instead of "
                                                                         "stdout.")] = None,
    batch_size: Annotated[int, typer.Option(help="Texts per forward pass.")] = 64,
    parallel: Annotated[str, typer.Option(help=PARALLEL_HELP)] = "batches",
) -> None:
    """Classify texts: one JSON line per text with its label and scores (token classification: its entities
    with character offsets)."""
    from tuneforge.recipes.runfolder import check_output_file, write_output_lines
    from tuneforge.run import load

    if not text and input is None:
        raise TuneforgeError("Give texts with --text T (repeatable) or a file with --input FILE.")
    if output is not None:
        check_output_file(output)
    texts = list(text or [])
    pairs: list[str | None] | None = None
    if input is not None:  # read with the run's own columns: the file it was trained on works as it is
        read, read_pairs = _read_input_texts(input, run_dir, *_run_columns(run_dir))
        pairs = [None] * len(texts) + read_pairs if read_pairs is not None else None
        texts += read
    run = load(run_dir, parallel=parallel)
    predictions = run.predict(texts, pairs, batch_size=batch_size) if pairs is not None \
        else run.predict(texts, batch_size=batch_size)
    rows = [{"text": t, **({"text_pair": pairs[i]} if pairs is not None else {}), **p}
            for i, (t, p) in enumerate(zip(texts, predictions))]
    lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    if output is not None:
        write_output_lines(output, lines)
        err.print(f"wrote {len(lines)} predictions to {output}")
    else:
        sys.stdout.write("\n".join(lines) + "\n")


@app.command()
def generate(
    run_dir: Annotated[Path, typer.Argument(help="A finished generation run folder (task: generation).")],
    prompt: Annotated[Optional[list[str]], typer.Option("--prompt", "-p", help="A prompt to answer (repeatable).")
                      ] = None,
    input: Annotated[Optional[Path], typer.Option("--input", "-i", help="File of prompts: .txt (one per line), "
                                                                       ".jsonl/.csv/.tsv (the run's prompt "
                                                                       "column).")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Longest answer, in tokens.")] = 128,
    temperature: Annotated[Optional[float], typer.Option(help="Sampling temperature (default 0.7); giving it "
                                                              "samples.", show_default=False)] = None,
    top_p: Annotated[Optional[float], typer.Option(help="Nucleus sampling: keep the most likely tokens up to this "
                                                        "probability mass (default 0.9); giving it samples.",
                                                   show_default=False)] = None,
    top_k: Annotated[Optional[int], typer.Option(help="Sample among this many most likely tokens; 0: no limit "
                                                      "(default 50); giving it samples.", show_default=False)
                     ] = None,
    greedy: Annotated[Optional[bool], typer.Option("--greedy/--sample", help="Greedy decoding (deterministic; the "
                                                                             "default) or sampling with temperature, "
                                                                             "top-p, top-k (any of them, or --seed, "
                                                                             "also samples).", show_default=False)
                      ] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the sampling (default 0); giving it samples.",
                                                show_default=False)] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write JSON lines here instead of "
                                                                         "stdout.")] = None,
    batch_size: Annotated[int, typer.Option(help="Prompts per generate call.")] = 16,
) -> None:
    """Answer prompts with a generation run: one JSON line per prompt, {"prompt", "response"} (docs/GENERATION.md)."""
    from tuneforge.tasks.generation.cli import generate_command

    generate_command(run_dir, list(prompt or []), input, output,
                     dict(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
                          do_sample=None if greedy is None else not greedy, seed=seed), batch_size, err)


@app.command("eval")
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder.")],
    file: Annotated[Path, typer.Argument(help="Labelled examples (.jsonl, .json, .csv, .tsv); for token "
                                              "classification tagged sentences (.jsonl, .conll).")],
    output: Annotated[Optional[Path], typer.Option(help="Where to write the metrics (default: "
                                                        "RUN_DIR/eval-<file name>.json).")] = None,
    by: Annotated[Optional[list[str]], typer.Option(help="Also report metrics per slice of this field: a column "
                                                         "of the file (e.g. source), or length for token-length "
                                                         "quartiles (repeatable).")] = None,
    parallel: Annotated[str, typer.Option(help=PARALLEL_HELP)] = "batches",
) -> None:
    """Evaluate a run on a labelled file: accuracy, macro-F1, per-class scores, confusion matrix, slices (--by);
    token classification: entity precision, recall and F1, overall and per type."""
    from tuneforge.data import read_examples
    from tuneforge.data.validate import check_known_labels
    from tuneforge.evaluation.plots import plot_confusion
    from tuneforge.evaluation.slices import evaluate_slices
    from tuneforge.recipes.runfolder import flatten, write_json
    from tuneforge.run import load

    from tuneforge.tasks import task_of_run

    if output is not None:
        from tuneforge.recipes.runfolder import check_output_file

        check_output_file(output)
    task = task_of_run(run_dir)
    if task.eval_command is not None:  # its own file formats and scores (token classification: docs/NER.md)
        return task.part("eval_command")(run_dir, file, output, out, err)
    run = load(run_dir, parallel=parallel)
    d = run.config.data
    examples = read_examples(file, text_column=d.text_column, text_pair_column=d.text_pair_column,
                             label_column=d.label_column, run=run_dir)
    check_known_labels(examples, run.labels, str(file))
    sliced = evaluate_slices(run, examples, by) if by else None
    metrics = flatten("", {"eval": sliced["overall"] if sliced else run.evaluate(examples)})
    metrics["eval.file"] = str(file)
    if sliced:
        metrics["eval.by"] = sliced["by"]
    target = output or run_dir / f"eval-{file.stem}.json"
    write_json(target, metrics)
    plot_confusion(metrics["eval.confusion_matrix"], run.labels, target.with_suffix(".png"),
                   f"{file.name}: accuracy {metrics['eval.accuracy']:.3f}")
    _print_metrics(metrics, run.labels)
    pictures = [target.with_suffix(".png")]
    if sliced:
        from tuneforge.evaluation.plots import plot_slices
        from tuneforge.evaluation.slices import slice_table

        for field, result in sliced["by"].items():
            out.print(slice_table(field, result))
            pictures.append(target.with_name(f"{target.stem}-by-{_safe_name(field)}.png"))
            plot_slices(field, result, pictures[-1], metrics["eval.accuracy"])
    err.print(f"wrote {target} and {', '.join(map(str, pictures))}")


def _safe_name(field: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in field)


@app.command()
def ensemble(
    run_dirs: Annotated[list[Path], typer.Argument(metavar="RUN_DIR", help="Two or more finished run folders "
                                                   "of the same task (other seeds, methods), or their ONNX exports.",
                                                   show_default=False)],
    input: Annotated[Optional[Path], typer.Option("--input", "-i", help="Labelled test examples (.jsonl, .json, "
                                                  ".csv, .tsv); default: the runs' common test split.")] = None,
    output_dir: Annotated[Optional[Path], typer.Option(help="Report folder (default runs/ensemble-<timestamp>).")
                          ] = None,
    batch_size: Annotated[int, typer.Option(help="Texts per forward pass.")] = 64,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Average the class probabilities of several runs; report each member's and the ensemble's metrics."""
    from rich.table import Table

    from tuneforge.recipes.ensemble import default_output_dir, ensemble as ensemble_recipe

    result = ensemble_recipe(run_dirs, input, output_dir=output_dir or default_output_dir(), batch_size=batch_size,
                             progress=not quiet)
    table = Table("member", "method", "seed", "accuracy", "macro-F1", "loss")
    for m in result.members:
        table.add_row(escape(m["run"]), m["method"], str(m["seed"] if m["seed"] is not None else "-"),
                      f"{m['accuracy']:.4f}", f"{m['macro_f1']:.4f}", f"{m['loss']:.4f}")
    e, g = result.metrics, result.gain
    table.add_row(f"[bold]ensemble (mean of {len(result.members)})[/]", "", "", f"[bold]{e['accuracy']:.4f}[/]",
                  f"[bold]{e['macro_f1']:.4f}[/]", f"{e['loss']:.4f}")
    out.print(table)
    out.print(f"{e['count']:,} examples ({escape(result.data)}); accuracy gain "
              f"[bold]{100 * g['accuracy_vs_mean_member']:+.2f}[/] points over the mean member, "
              f"{100 * g['accuracy_vs_best_member']:+.2f} over the best")
    err.print(f"wrote {result.dir}/ensemble.json, ensemble.md, ensemble.png, confusion_matrix.png")


def _print_metrics(metrics: dict, labels: list[str], split: str = "eval") -> None:
    from rich.table import Table

    out.print(f"accuracy [bold]{metrics[f'{split}.accuracy']:.4f}[/]  "
              f"macro-F1 [bold]{metrics[f'{split}.macro_f1']:.4f}[/]  ({metrics[f'{split}.count']} examples)")
    table = Table("label", "precision", "recall", "f1", "support")
    for name in labels:
        c = metrics[f"{split}.per_class"][name]
        table.add_row(name, f"{c['precision']:.3f}", f"{c['recall']:.3f}", f"{c['f1']:.3f}", str(c["support"]))
    out.print(table)


@app.command()
def explain(
    run_dir: Annotated[Path, typer.Argument(help="A finished classification run folder (any method).")],
    text: Annotated[Optional[list[str]], typer.Option("--text", "-t", help="A text to explain (repeatable).")] = None,
    input: Annotated[Optional[Path], typer.Option("--input", "-i", help="File of texts: .txt (one per line), "
                                                                       ".jsonl/.csv/.tsv (run's text column).")] = None,
    label: Annotated[Optional[str], typer.Option(help="Explain this label instead of the predicted one.")] = None,
    steps: Annotated[int, typer.Option(help="Integration steps: more make the scores add up more exactly.")] = 50,
    html: Annotated[Optional[Path], typer.Option(help="Write a page with the texts highlighted here.")] = None,
    png: Annotated[Optional[Path], typer.Option(help="Write a bar chart of the scores per text here.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the JSON lines here instead of "
                                                                         "stdout.")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Per-token attributions (integrated gradients): one JSON line per text with tokens, scores and label."""
    from tuneforge.explain import explain as explain_recipe
    from tuneforge.recipes.runfolder import check_output_file, write_output_lines

    if not text and input is None:
        raise TuneforgeError("Give texts with --text T (repeatable) or a file with --input FILE.")
    for flag, path in (("--output", output), ("--html", html), ("--png", png)):
        if path is not None:  # before the integrated gradients, which take a while
            check_output_file(path, flag)
    texts = list(text or []) + (_read_input_texts(input, run_dir, _run_columns(run_dir)[0])[0]
                                if input is not None else [])
    explanations = explain_recipe(run_dir, texts, label=label, steps=steps, html=html, png=png,
                                  progress=not quiet)
    lines = [json.dumps(e.to_dict(), ensure_ascii=False) for e in explanations]
    if output is not None:
        write_output_lines(output, lines)
        err.print(f"wrote {len(lines)} explanation(s) to {output}")
    else:
        sys.stdout.write("\n".join(lines) + "\n")
    for path in (html, png):
        if path is not None:
            err.print(f"wrote {path}")


@app.command()
def zeroshot(
    config: Annotated[Path, typer.Argument(help="Config (YAML) with a prompt: section (template, verbalizer).")],
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides, e.g. prompt.calibrate=true.",
                                                             show_default=False)] = None,
    limit: Annotated[Optional[int], typer.Option(help="Score a stratified sample of N examples of each split, for "
                                                      "a quick look.")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Classify with a prompt and a verbalizer, no training; write a run folder with metrics like `eval`."""
    from tuneforge.recipes.zeroshot import zeroshot as zeroshot_recipe

    if "=" in str(config) and not config.exists():
        raise TuneforgeError(f'"{config}" looks like an override; the config file comes first: '
                             f"tuneforge zeroshot CONFIG.yaml {config}")
    result = zeroshot_recipe(config, list(overrides or []), limit=limit, progress=not quiet)
    m = result.metrics
    out.print(f"validation accuracy {m['validation.accuracy']:.4f}, macro-F1 {m['validation.macro_f1']:.4f}")
    out.print("test:")
    _print_metrics(m, result.labels, split="test")
    err.print(f"{m['zeroshot.texts_per_second']:.1f} texts/s; run folder: {result.dir}")


@app.command(context_settings={"allow_extra_args": False})
def fewshot(
    config: Annotated[Path, typer.Argument(help="Any training config (YAML): a method, a prompt: (PET) or a "
                                                "contrastive: section (configs/airline-fewshot.yaml).")],
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides, e.g. "
                                                                  "contrastive.iterations=10.", show_default=False)]
    = None,
    shots: Annotated[int, typer.Option(help="Examples per class drawn from the training split for each seed.")] = 8,
    seeds: Annotated[int, typer.Option(help="How many seeds (train.seed, train.seed+1, ...): one sample and one "
                                            "run each.")] = 5,
    ensemble: Annotated[bool, typer.Option(help="Also score the average of the seeds' predicted probabilities.")]
    = False,
    output_dir: Annotated[Optional[Path], typer.Option(help="Folder to write; default runs/<name>-<K>shot-<time>.")]
    = None,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """The k-shot protocol: K examples per class, one run per seed, tested on the whole test split; mean ± std."""
    from tuneforge.fewshot.protocol import fewshot as fewshot_recipe

    if "=" in str(config) and not config.exists():
        raise TuneforgeError(f'"{config}" looks like an override; the config file comes first: '
                             f"tuneforge fewshot CONFIG.yaml {config}")
    result = fewshot_recipe(config, list(overrides or []), shots=shots, seeds=seeds, ensemble=ensemble,
                            output_dir=output_dir, progress=not quiet)
    sys.stdout.write(result.markdown)
    err.print(f"few-shot folder: {result.dir} (fewshot.json, summary.md, one run folder per seed)")


@app.command()
def compare(
    config: Annotated[Path, typer.Argument(help="Training config (YAML): data, model, budget for every method.")],
    overrides: Annotated[Optional[list[str]], typer.Argument(
        help="key=value overrides for every run (train.epochs=1); METHOD.option=value sets one method's option "
             "(lora.r=16).", show_default=False)] = None,
    methods: Annotated[str, typer.Option(help="Comma-separated methods to compare (default: all of them).")] = "",
    lr: Annotated[Optional[list[str]], typer.Option(help="A method's learning rate, METHOD=RATE (repeatable); "
                                                         "default: the method's recommended rate.")] = None,
    sweep: Annotated[str, typer.Option(help="Comma-separated factors of each method's rate to try first on a "
                                            "pilot run, keeping the best on validation, e.g. 0.3,1,3.")] = "",
    sweep_samples: Annotated[int, typer.Option(help="Training examples of each pilot run.")] = 1000,
    output_dir: Annotated[Optional[Path], typer.Option(help="Comparison folder (default runs/compare-<name>-"
                                                            "<timestamp>).")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Train several methods on the same data and budget; write a table (markdown) and a bar chart."""
    from tuneforge.methods import registry
    from tuneforge.recipes.compare import check_methods, compare as compare_recipe, parse_learning_rates

    names = check_methods([m.strip() for m in methods.split(",") if m.strip()] if methods else sorted(registry()))
    try:
        factors = [float(f) for f in sweep.split(",") if f.strip()]
    except ValueError:
        raise TuneforgeError(f'--sweep "{sweep}": give comma-separated numbers, e.g. --sweep 0.3,1,3.') from None
    if sweep_samples < 1:
        raise TuneforgeError("--sweep-samples must be at least 1.")
    command = "tuneforge compare " + " ".join(sys.argv[2:])
    result = compare_recipe(config, names, list(overrides or []), learning_rates=parse_learning_rates(lr or [], names),
                            sweep=factors or None, sweep_samples=sweep_samples, output_dir=output_dir,
                            progress=not quiet, command=command)
    out.print(result.markdown)


@app.command()
def prune(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A finished run folder (full, freeze, bitfit; "
                                                                     "lora, adalora, ia3 with --merge).")],
    target: Annotated[Path, typer.Argument(metavar="OUT", help="The new run folder (must not exist).")],
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides of the fine-tune's config "
                                                                  "(default: the run's own), e.g. "
                                                                  "train.learning_rate=5e-5.", show_default=False)
                         ] = None,
    heads: Annotated[Optional[float], typer.Option(help="Remove this fraction of attention heads, least important "
                                                        "first (BERT-style models).")] = None,
    magnitude: Annotated[Optional[float], typer.Option(help="Zero this fraction of the layers' weights, smallest "
                                                            "first (any model; no speed-up on dense CPUs).")] = None,
    finetune_epochs: Annotated[float, typer.Option(help="Epochs of fine-tuning after pruning (0: none).")] = 1,
    scope: Annotated[str, typer.Option(help="Magnitude pruning: global or layer.")] = "global",
    merge: Annotated[bool, typer.Option(help="Fold a lora / adalora / ia3 run into its weights first.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Prune a run (attention heads or weights), fine-tune it, and report size, speed and accuracy before/after."""
    from tuneforge.recipes.prune import prune as prune_recipe

    if (heads is None) == (magnitude is None):
        raise TuneforgeError("Say what to prune: --heads FRACTION (e.g. 0.5, attention heads) or --magnitude "
                             "SPARSITY (e.g. 0.5, weights); one of them.")
    run = prune_recipe(run_dir, target, heads=heads, magnitude=magnitude, finetune_epochs=finetune_epochs,
                       overrides=list(overrides or []), progress=not quiet, scope=scope, merge=merge)
    m = run.metrics
    out.print(f"test accuracy {m['before.test_accuracy']:.4f} -> [bold]{m['after.test_accuracy']:.4f}[/], size "
              f"{m['before.size_mb']:.1f} -> {m['after.size_mb']:.1f} MB, {m['before.texts_per_second']:.0f} -> "
              f"{m['after.texts_per_second']:.0f} texts/s; run folder: [bold]{run.dir}[/]")


@app.command()
def distill(
    config: Annotated[Path, typer.Argument(help="Training config (YAML) with a distill: section (teacher, "
                                                "student, temperature, alpha).")],
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides, e.g. "
                                                                  "distill.student.layers=2.", show_default=False)
                         ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Distil a finished run into a smaller student; report teacher vs student size, speed and accuracy."""
    from tuneforge.recipes.distill import distill as distill_recipe

    run = distill_recipe(config, list(overrides or []), progress=not quiet)
    m = run.metrics
    out.print(f"teacher {m['teacher.test_accuracy']:.4f} / student [bold]{m['student.test_accuracy']:.4f}[/] test "
              f"accuracy; {m['teacher.size_mb']:.1f} / {m['student.size_mb']:.1f} MB; "
              f"{m['teacher.texts_per_second']:.0f} / {m['student.texts_per_second']:.0f} texts/s; run folder: "
              f"[bold]{run.dir}[/]")


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder.")],
    folder: Annotated[Optional[Path], typer.Argument(metavar="OUT", help="The new folder (must not exist or be "
                                                                         "empty).", show_default=False)] = None,
    format: Annotated[str, typer.Option("--format", help="hf: a Hugging Face folder; onnx: model.onnx for "
                                                         "onnxruntime.")] = "hf",
    merge: Annotated[Optional[bool], typer.Option("--merge/--no-merge", help="Fold the method into the weights "
                                                  "(full, freeze, bitfit, lora, adalora, ia3). Default: merge where "
                                                  "the method can; the others export unmerged.",
                                                  show_default=False)] = None,
    quantize: Annotated[Optional[str], typer.Option(help="int8: also write model.int8.onnx (onnxruntime dynamic "
                                                         "quantisation; --format onnx).")] = None,
    parity_samples: Annotated[int, typer.Option(help="Test examples for the parity check against the run.")] = 256,
    parity_data: Annotated[Optional[Path], typer.Option(help="A labelled file for the parity check instead of "
                                                             "the run's test split.")] = None,
) -> None:
    """Export a trained model (Hugging Face or ONNX, merged or not) and check it against the run (docs/EXPORT.md)."""
    from tuneforge.onnx.parity import parity_table
    from tuneforge.recipes.runfolder import read_json
    from tuneforge.run import load

    if folder is None:
        raise TuneforgeError("Give the folder to write: tuneforge export RUN_DIR OUT [--format hf|onnx] [--merge] "
                             "[--quantize int8].")
    run = load(run_dir, precision="fp32")
    if not hasattr(run, "export"):
        raise TuneforgeError(f"{run_dir} is an export already; export the run folder it came from.")
    written = run.export(folder, format=format, merge=merge, quantize=quantize, parity_samples=parity_samples,
                         parity_data=parity_data)
    report = read_json(written / "parity.json")
    out.print(parity_table(report))
    if report["warning"]:
        err.print(f"[bold yellow]warning:[/] {escape(report['warning'])}", soft_wrap=True)
    info = read_json(written / "export.json")
    remote = ", trust_remote_code=True" if (written / "pruned_bert.py").exists() else ""  # tuneforge prune's class
    how = (f"AutoModelForSequenceClassification.from_pretrained({str(written)!r}{remote})" if info["format"] == "hf"
           and info["merged"] else f"tuneforge.load({str(written)!r})")
    alone = " or with onnxruntime alone (docs/EXPORT.md)" if info["format"] == "onnx" else ""
    out.print(f"wrote {'a merged' if info['merged'] else 'an unmerged'} {info['format']} export of "
              f"{info['method']} to [bold]{written}[/]; load it with {how}{alone}")


@app.command()
def serve(
    targets: Annotated[Optional[list[str]], typer.Argument(
        metavar="RUN_DIR... [KEY=VALUE]...", help="Run folders (or ONNX export folders) to serve, each PATH or "
             "NAME=PATH, then key=value config overrides (limits.max_texts=32).", show_default=False)] = None,
    config: Annotated[Optional[Path], typer.Option(help="Serve config (YAML); see configs/serve.yaml and "
                                                        "`tuneforge config show serve`.")] = None,
    host: Annotated[Optional[str], typer.Option(help="Address to listen on (default 127.0.0.1).")] = None,
    port: Annotated[Optional[int], typer.Option(help="TCP port (default 8000).")] = None,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="Serve without API keys (a warning is printed).")
                       ] = False,
) -> None:
    """Serve runs over HTTP: POST /v1/predict, /v1/models, /healthz, /metrics; API keys from $TUNEFORGE_API_KEYS."""
    from tuneforge.recipes.serve import serve as serve_recipe
    from tuneforge.serve.config import ServeConfig

    runs, overrides = [], []
    for item in targets or []:
        key = item.split("=", 1)[0]
        is_override = "=" in item and ("." in key or key in ServeConfig.model_fields)
        (overrides if is_override else runs).append(item)
    if host is not None:
        overrides.append(f"host={host}")
    if port is not None:
        overrides.append(f"port={port}")
    try:
        serve_recipe(runs, config, overrides, no_auth=no_auth,
                     announce=lambda text: err.print(escape(text), soft_wrap=True))
    except KeyboardInterrupt:  # only before the server runs; once it runs, Ctrl-C is a graceful stop
        err.print("interrupted before the server started.")
        sys.exit(130)


@datasets_app.command("list")
def datasets_list() -> None:
    """The built-in datasets (read from installed packages, never downloaded)."""
    from rich.table import Column, Table

    from tuneforge.data import list_datasets

    width = max(len(d.name) for d in list_datasets())
    table = Table(Column("name", no_wrap=True, min_width=width), "language", "labels", "installed", "description")
    for ds in list_datasets():
        table.add_row(ds.name, ds.language, ", ".join(ds.labels), "yes" if ds.available() else f"no: {ds.install}",
                      ds.description)
    out.print(table)


@datasets_app.command("export")
def datasets_export(
    name: Annotated[str, typer.Argument(help="A built-in dataset name.")],
    folder: Annotated[Path, typer.Argument(help="Folder for train/validation/test.jsonl.")],
    overwrite: Annotated[bool, typer.Option(help="Replace train/validation/test.jsonl and labels.json if the folder "
                                                 "already holds them.")] = False,
) -> None:
    """Write a built-in dataset's fixed splits as JSONL files."""
    from tuneforge.data import export_splits, load_builtin
    from tuneforge.data.export import check_export_folder

    check_export_folder(folder, overwrite)
    splits = load_builtin(name)
    paths = export_splits(splits, folder)
    for split, path in paths.items():
        out.print(f"{split}: {path}")


@config_app.command("show")
def config_show(recipe: Annotated[str, typer.Argument(help="Recipe name: train, pretrain, prune, distill, "
                                                           "serve, monitor, recommend.")] = "train") -> None:
    """Every field of a recipe's config with its type, default and help."""
    from tuneforge.config.describe import describe

    sys.stdout.write(describe(recipe) + "\n")


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        app()
    except TuneforgeError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:  # the way back depends on the command: predict or serve have nothing to resume
        command = next((a for a in sys.argv[1:] if not a.startswith("-")), "")
        resume = {"train": "a run with checkpoints continues with `tuneforge train --resume RUN_DIR`",
                  "pretrain": "a run with checkpoints continues with `tuneforge pretrain --resume RUN_DIR`",
                  "tune": "the study continues with `tuneforge tune --resume DIR`"}.get(command)
        err.print(f"interrupted; {resume}." if resume else "interrupted.")
        sys.exit(130)


if __name__ == "__main__":
    main()
