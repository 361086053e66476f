"""Compare methods on the same data and budget: ``tuneforge compare CONFIG --methods full,lora,...``.

Each method trains from the same config (data, epochs, batch size, schedule, seed) with a learning rate of
its own: the method's recommended rate, one given with ``--lr NAME=VALUE``, or, with ``--sweep``, the best
on the validation set among multiples of it tried on a shorter pilot run. Every run happens in its own
process, so each run's peak memory is its own. The comparison folder holds every run folder, and:

    compare.md     the table (trainable parameters and %, train seconds, samples/s, peak memory, validation
                   and test accuracy, test macro-F1), the command, the learning rates and how they were chosen
    compare.json   the same rows, machine-readable
    compare.png    bar charts of test accuracy, samples/s and trainable %
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from tuneforge.config import TrainConfig, dump_config
from tuneforge.errors import TuneforgeError, did_you_mean
from tuneforge.recipes.runfolder import write_json

console = Console(stderr=True)


@dataclass
class Row:
    method: str
    learning_rate: float
    lr_source: str  # "recommended", "--lr", "sweep"
    run_dir: str
    status: str = "complete"  # or "failed: <message>"
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class Comparison:
    dir: Path
    rows: list[Row]
    sweep: list[Row]
    markdown: str


def parse_learning_rates(items: list[str], methods: list[str]) -> dict[str, float]:
    rates = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise TuneforgeError(f'--lr "{item}": write it as METHOD=RATE, e.g. --lr lora=2e-3.')
        if name not in methods:
            raise TuneforgeError(f'--lr "{item}": {name} is not among --methods ({", ".join(methods)}).'
                                 f"{did_you_mean(name, methods)}")
        try:
            rates[name] = float(value)
        except ValueError:
            raise TuneforgeError(f'--lr "{item}": "{value}" is not a number; e.g. --lr {name}=2e-3.') from None
        if rates[name] <= 0:
            raise TuneforgeError(f'--lr "{item}": a learning rate must be positive.')
    return rates


def check_methods(methods: list[str]) -> list[str]:
    from tuneforge.methods import registry

    known = registry()
    if not methods:
        raise TuneforgeError(f"--methods is empty; give a comma-separated list, e.g. {','.join(sorted(known))}.")
    for name in methods:
        if name not in known:
            raise TuneforgeError(f'--methods: "{name}" is not a method.{did_you_mean(name, known)} Methods: '
                                 f"{', '.join(sorted(known))}.")
    if len(set(methods)) < len(methods):
        raise TuneforgeError("--methods names a method twice; each trains once per comparison.")
    return methods


def compare(config: TrainConfig | dict | str | Path, methods: list[str], overrides: list[str] | None = None, *,
            learning_rates: dict[str, float] | None = None, sweep: list[float] | None = None,
            sweep_samples: int = 1000, output_dir: str | Path | None = None, progress: bool = True,
            command: str | None = None) -> Comparison:
    """Train ``methods`` on one config and write the comparison folder (see the module docstring).

    ``overrides`` are ``a.b=c`` strings for every run; one that starts with a method's name (``lora.r=16``)
    sets that method's option only. ``sweep`` holds factors of each method's starting rate (e.g.
    ``[0.3, 1, 3]``) tried on a pilot of at most ``sweep_samples`` training examples.
    """
    from tuneforge.methods import registry
    from tuneforge.recipes.train import as_config

    methods = check_methods(list(methods))
    common = [o for o in overrides or [] if o.split(".", 1)[0] not in methods]
    per_method = {m: [f"method.{o.split('.', 1)[1]}" for o in overrides or [] if o.split(".", 1)[0] == m]
                  for m in methods}
    base = as_config(config, common)
    learning_rates = learning_rates or {}
    folder = Path(output_dir) if output_dir else \
        Path("runs") / f"compare-{base.name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    if folder.exists() and any(folder.iterdir()):
        raise TuneforgeError(f"output folder {folder} exists and is not empty; choose another with --output-dir.")
    folder.mkdir(parents=True, exist_ok=True)

    def method_config(name: str, lr: float, run_dir: Path, max_train: int | None) -> TrainConfig:
        method = base.method.model_dump() if base.method.name == name else {"name": name}
        data = base.data.model_dump()
        if max_train is not None:
            data["max_train_samples"] = min(max_train, data["max_train_samples"] or max_train)
        raw = base.model_dump() | {"name": f"{base.name}-{name}", "method": method, "data": data,
                                   "output_dir": str(run_dir)}
        raw["train"] = raw["train"] | {"learning_rate": lr}
        return as_config(raw, per_method[name])

    rows, sweep_rows = [], []
    for index, name in enumerate(methods, 1):
        start = learning_rates.get(name, registry()[name].config.recommended_learning_rate)
        source = "--lr" if name in learning_rates else "recommended"
        if sweep and name not in learning_rates:
            trials = []
            for factor in sweep:
                lr = float(f"{start * factor:.3g}")
                cfg = method_config(name, lr, folder / "sweep" / f"{name}-lr{lr:g}", sweep_samples)
                console.print(f"[bold]{index}/{len(methods)} {name}[/]: pilot at learning rate {lr:g}")
                trials.append(_run(cfg, name, lr, "sweep", progress))
            sweep_rows += trials
            done = [t for t in trials if t.status == "complete"]
            if done:
                metric = base.train.metric
                pick = min if metric == "loss" else max
                start = pick(done, key=lambda t: t.metrics.get(f"validation.{metric}", float("nan"))).learning_rate
                source = "sweep"
        cfg = method_config(name, start, folder / name, None)
        console.print(f"[bold]{index}/{len(methods)} {name}[/]: learning rate {start:g} ({source})")
        rows.append(_run(cfg, name, start, source, progress))

    markdown = render_markdown(base, rows, sweep_rows, sweep, sweep_samples, command)
    (folder / "compare.md").write_text(markdown, encoding="utf-8")
    write_json(folder / "compare.json", {"config": json.loads(base.model_dump_json()), "command": command,
                                         "rows": [asdict(r) for r in rows], "sweep": [asdict(r) for r in sweep_rows]})
    plot_comparison(rows, folder / "compare.png", base.name)
    console.print(f"comparison written to [bold]{escape(str(folder))}[/] (compare.md, compare.png)")
    return Comparison(dir=folder, rows=rows, sweep=sweep_rows, markdown=markdown)


def _run(cfg: TrainConfig, name: str, lr: float, source: str, progress: bool) -> Row:
    """``tuneforge train`` in a child process (its own peak memory); a failure is recorded, not raised."""
    run_dir = Path(cfg.output_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    config_path = run_dir.parent / f".{run_dir.name}.yaml"
    config_path.write_text(dump_config(cfg), encoding="utf-8")
    src = str(Path(__file__).resolve().parents[2])  # so a source checkout works without installing
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    args = [sys.executable, "-m", "tuneforge", "train", str(config_path)] + ([] if progress else ["--quiet"])
    started = time.perf_counter()
    result = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=None if progress else subprocess.PIPE,
                            text=True)
    config_path.unlink(missing_ok=True)
    row = Row(method=name, learning_rate=lr, lr_source=source, run_dir=str(run_dir))
    if result.returncode != 0:
        message = (result.stderr or "").strip().splitlines()[-1:] or [f"exit code {result.returncode}"]
        row.status = f"failed: {message[0][:300]}"
        console.print(f"[red]{name} failed[/] ({escape(row.status)}); going on with the next method")
        return row
    row.metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    row.metrics["wall_seconds"] = time.perf_counter() - started
    return row


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render_markdown(base: TrainConfig, rows: list[Row], sweep_rows: list[Row], sweep: list[float] | None,
                    sweep_samples: int, command: str | None) -> str:
    d, t = base.data, base.train
    data = d.dataset or d.train
    lines = [f"# Method comparison: {base.name}", "",
             f"Model `{base.model}`, data `{data}` (at most {d.max_train_samples or 'all'} training examples), "
             f"{t.epochs:g} epochs, batch {t.batch_size}, {t.scheduler} schedule with warmup {t.warmup:g}, "
             f"precision {t.precision}, seed {t.seed}; each method with its own learning rate (below).", ""]
    if command:
        lines += ["```", command, "```", ""]
    lines += ["| method | learning rate | trainable parameters | trainable % | train s | samples/s | "
              "peak memory MB | validation accuracy | test accuracy | test macro-F1 |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        m = r.metrics
        if r.status != "complete":
            lines.append(f"| {r.method} | {r.learning_rate:g} | {r.status} |  |  |  |  |  |  |  |")
            continue
        lines.append(f"| {r.method} | {r.learning_rate:g} ({r.lr_source}) | {m['trainable_parameters']:,} | "
                     f"{m['trainable_percent']:.3f} | {m['train.seconds']:.1f} | "
                     f"{m['train.samples_per_second']:.1f} | {_fmt(m.get('train.peak_memory_mb'), '.0f')} | "
                     f"{_fmt(m.get('validation.accuracy'), '.4f')} | {m['test.accuracy']:.4f} | "
                     f"{m['test.macro_f1']:.4f} |")
    lines += ["", "Learning rates: *recommended* is the method's `recommended_learning_rate`; *--lr* was given on "
                  "the command line"]
    if sweep:
        lines[-1] += (f"; *sweep* is the best validation {t.metric} among {', '.join(f'{f:g}x' for f in sweep)} the "
                      f"recommended rate, each tried on a pilot run of at most {sweep_samples} training examples "
                      "with the same epochs and schedule.")
        lines += ["", "| method | pilot learning rate | validation accuracy | validation macro-F1 |",
                  "|---|---:|---:|---:|"]
        for r in sweep_rows:
            m = r.metrics
            lines.append(f"| {r.method} | {r.learning_rate:g} | {_fmt(m.get('validation.accuracy'), '.4f')} | "
                         f"{_fmt(m.get('validation.macro_f1'), '.4f')} |" if r.status == "complete" else
                         f"| {r.method} | {r.learning_rate:g} | {r.status} |  |")
    else:
        lines[-1] += "."
    return "\n".join(lines) + "\n"


def plot_comparison(rows: list[Row], path: Path, title: str) -> None:
    from tuneforge.evaluation.plots import plt

    done = [r for r in rows if r.status == "complete"]
    if not done:
        return
    names = [r.method for r in done]
    panels = [("test accuracy", [r.metrics["test.accuracy"] for r in done], "tab:blue", False),
              ("training samples/s", [r.metrics["train.samples_per_second"] for r in done], "tab:orange", False),
              ("trainable parameters %", [r.metrics["trainable_percent"] for r in done], "tab:green", True)]
    fig, axes = plt.subplots(1, 3, figsize=(max(9, 1.1 * len(names) * 3), 4))
    for ax, (label, values, color, log) in zip(axes, panels):
        ax.bar(names, values, color=color)
        ax.set_title(label)
        ax.tick_params(axis="x", rotation=45)
        if log:
            ax.set_yscale("log")
        elif label == "test accuracy":
            low = min(values)
            ax.set_ylim(max(0.0, low - 0.1), min(1.0, max(values) + 0.03))
        for i, v in enumerate(values):
            ax.text(i, v, f"{v:.3g}", ha="center", va="bottom", fontsize=7)
    fig.suptitle(f"{title}: methods on the same data and budget")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
