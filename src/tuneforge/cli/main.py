"""``tuneforge``: train, zeroshot, predict, eval, datasets, config.

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

from tuneforge.errors import TuneforgeError

app = typer.Typer(help="Adapt pretrained language models to your task: fine-tune, evaluate, predict.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
datasets_app = typer.Typer(help="Built-in offline datasets.", no_args_is_help=True)
config_app = typer.Typer(help="Recipe config schemas.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
app.add_typer(config_app, name="config")
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
    if config is not None and "=" in str(config) and not config.exists():
        raise TuneforgeError(f'"{config}" looks like an override; the config file comes first: '
                             f"tuneforge train CONFIG.yaml {config}")
    run = train_recipe(config, list(overrides or []), resume=resume, progress=not quiet)
    m = run.metrics
    out.print(f"test accuracy [bold]{m['test.accuracy']:.4f}[/], macro-F1 [bold]{m['test.macro_f1']:.4f}[/]; "
              f"{m['train.samples_per_second']:.1f} samples/s; run folder: [bold]{run.dir}[/]")


def _read_input_texts(path: Path) -> list[str]:
    """Texts from a .jsonl/.csv/.tsv (column ``text``) or a plain .txt file (one text per line)."""
    from tuneforge.data import read_examples

    if not path.exists():
        raise TuneforgeError(f"--input {path.resolve()} does not exist.")
    if path.suffix == ".txt":
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [e.text for e in read_examples(path, require_label=False)]


@app.command()
def predict(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder.")],
    text: Annotated[Optional[list[str]], typer.Option("--text", "-t", help="A text to classify (repeatable).")] = None,
    input: Annotated[Optional[Path], typer.Option("--input", "-i", help="File of texts: .txt (one per line), "
                                                                       ".jsonl/.csv/.tsv (column text).")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write JSON lines here instead of "
                                                                         "stdout.")] = None,
    batch_size: Annotated[int, typer.Option(help="Texts per forward pass.")] = 64,
) -> None:
    """Classify texts: one JSON line per text with its label and scores."""
    from tuneforge.run import load

    if not text and input is None:
        raise TuneforgeError("Give texts with --text T (repeatable) or a file with --input FILE.")
    texts = list(text or []) + (_read_input_texts(input) if input is not None else [])
    run = load(run_dir)
    predictions = run.predict(texts, batch_size=batch_size)
    lines = [json.dumps({"text": t, **p}, ensure_ascii=False) for t, p in zip(texts, predictions)]
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text("\n".join(lines) + "\n", encoding="utf-8")
        err.print(f"wrote {len(lines)} predictions to {output}")
    else:
        sys.stdout.write("\n".join(lines) + "\n")


@app.command("eval")
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder.")],
    file: Annotated[Path, typer.Argument(help="Labelled examples (.jsonl, .json, .csv, .tsv).")],
    output: Annotated[Optional[Path], typer.Option(help="Where to write the metrics (default: "
                                                        "RUN_DIR/eval-<file name>.json).")] = None,
) -> None:
    """Evaluate a run on a labelled file: accuracy, macro-F1, per-class scores, confusion matrix."""
    from tuneforge.data import read_examples
    from tuneforge.evaluation.plots import plot_confusion
    from tuneforge.recipes.runfolder import flatten, write_json
    from tuneforge.run import load

    run = load(run_dir)
    d = run.config.data
    examples = read_examples(file, text_column=d.text_column, text_pair_column=d.text_pair_column,
                             label_column=d.label_column)
    metrics = flatten("", {"eval": run.evaluate(examples)})
    metrics["eval.file"] = str(file)
    target = output or run_dir / f"eval-{file.stem}.json"
    write_json(target, metrics)
    plot_confusion(metrics["eval.confusion_matrix"], run.labels, target.with_suffix(".png"),
                   f"{file.name}: accuracy {metrics['eval.accuracy']:.3f}")
    _print_metrics(metrics, run.labels)
    err.print(f"wrote {target} and {target.with_suffix('.png')}")


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
def export(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder.")],
    merge: Annotated[Optional[Path], typer.Option(help="Write a plain Hugging Face model here, the method merged "
                                                       "into the weights (lora, adalora, ia3, bitfit, full, freeze).")
                     ] = None,
) -> None:
    """Export a trained model for use without tuneforge."""
    from tuneforge.run import load

    if merge is None:
        raise TuneforgeError("Say what to export: --merge OUT writes a plain Hugging Face model folder.")
    run = load(run_dir, precision="fp32")
    folder = run.export_merged(merge)
    out.print(f"wrote a merged Hugging Face model to [bold]{folder}[/]; load it with "
              f"AutoModelForSequenceClassification.from_pretrained({str(folder)!r})")


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
) -> None:
    """Write a built-in dataset's fixed splits as JSONL files."""
    from tuneforge.data import export_splits, load_builtin

    splits = load_builtin(name)
    paths = export_splits(splits, folder)
    for split, path in paths.items():
        out.print(f"{split}: {path}")


@config_app.command("show")
def config_show(recipe: Annotated[str, typer.Argument(help="Recipe name: train.")] = "train") -> None:
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
    except KeyboardInterrupt:
        err.print("interrupted; a run with checkpoints continues with `tuneforge train --resume RUN_DIR`.")
        sys.exit(130)


if __name__ == "__main__":
    main()
