"""Hyperparameter search: each Optuna trial is one ``tuneforge train`` run with sampled overrides.

    for each trial:   sample a value per search.space path (TPE or random)
                      train with those overrides into TUNE_DIR/trial-NNN
                      report the validation metric at every evaluation; the median rule may stop it there
                      its value: the run's validation metric (never the test split)
    after each trial: trials.md, tune.png, best.yaml (the best trial's config, ready for `tuneforge train`)

The study lives in TUNE_DIR/study.db (SQLite): ``tuneforge tune --resume TUNE_DIR`` continues it.
Pruning (Optuna's MedianPruner): a trial stops at an evaluation when its metric is worse than the median of
the earlier trials' metrics at the same evaluation, after ``startup_trials`` full trials.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from tuneforge.config import TrainConfig, dump_config, load_config
from tuneforge.errors import TuneforgeError
from tuneforge.recipes.runfolder import check_new_folder, new_run_dir, write_json
from tuneforge.recipes.train import as_config
from tuneforge.training.checkpoint import write_atomic_text
from tuneforge.tune.config import Range, SearchConfig

console = Console(stderr=True)
STUDY = "tuneforge"


class TrialPruned(optuna.TrialPruned):
    """Raised from the training loop's log hook; the run folder records the status "pruned"."""

    run_status = "pruned"


@dataclass
class TuneResult:
    dir: Path
    best_value: float | None
    best_params: dict[str, Any]
    best_config: Path | None
    metric: str
    study: Any  # optuna.Study


def tune(config: TrainConfig | dict | str | Path | None, overrides: list[str] | None = None, *,
         trials: int | None = None, output_dir: str | Path | None = None, resume: str | Path | None = None,
         progress: bool = True, pruner: Any = None) -> TuneResult:
    """Search the config's ``search.space`` with Optuna, ``trials`` trials in all (default ``search.trials``).

    ``resume`` continues the study in that tune folder (its own config.yaml); ``output_dir`` defaults to
    runs/tune-<name>-<timestamp>. ``pruner``, an ``optuna.pruners.BasePruner``, replaces the one that
    ``search.pruner`` names (Python API only)."""
    if resume is not None:
        tune_dir = Path(resume)
        if not (tune_dir / "study.db").exists() or not (tune_dir / "config.yaml").exists():
            raise TuneforgeError(f"--resume {tune_dir}: no study.db and config.yaml there, so it is not a tune "
                                 "folder (tuneforge tune writes them).")
        cfg = load_config(TrainConfig, path=tune_dir / "config.yaml", overrides=overrides)
    else:
        if config is None:
            raise TuneforgeError("Give a config with a search: section (tuneforge tune CONFIG.yaml) or --resume DIR.")
        cfg = as_config(config, overrides)
        tune_dir = Path(output_dir) if output_dir is not None else new_run_dir(f"tune-{cfg.name}", None)
        if not tune_dir.exists():
            check_new_folder(tune_dir, "--output")  # a folder inside a file: say so before any work
        if tune_dir.exists() and not tune_dir.is_dir():
            raise TuneforgeError(f"{tune_dir} is a file, not a folder; nothing was written. Choose another --output "
                                 "(a new or empty folder).")
        if tune_dir.exists() and any(tune_dir.iterdir()):
            # --resume only where it can work: a tune folder (what --resume itself checks for)
            raise TuneforgeError(
                f"{tune_dir} already exists and is not empty. Choose another --output, or continue that study "
                f"with `tuneforge tune --resume {tune_dir}`." if (tune_dir / "study.db").exists()
                and (tune_dir / "config.yaml").exists() else
                f"{tune_dir} already exists and is not empty, and it is not a tune folder (no study.db and "
                "config.yaml in it), so there is no study in it to continue; nothing was written to it. Choose "
                "another --output (a new or empty folder).")
    if cfg.search is None:
        raise TuneforgeError("This config has no search: section, so there is nothing to tune. Add one, e.g.\n"
                             "search:\n  trials: 20\n  space:\n    train.learning_rate: {low: 1.0e-5, high: 1.0e-3, "
                             "log: true}\n    method.r: [4, 8, 16]")
    search = cfg.search
    base = json.loads(cfg.model_copy(update={"search": None, "output_dir": None}).model_dump_json())
    if cfg.tracking.mlflow:  # every trial in one MLflow store and experiment, to compare them side by side
        base["tracking"]["mlflow_uri"] = cfg.tracking.mlflow_uri or f"sqlite:///{tune_dir.resolve() / 'mlflow.db'}"
        base["tracking"]["mlflow_experiment"] = cfg.tracking.mlflow_experiment or f"tune-{cfg.name}"
    check_space(base, search)
    total = trials if trials is not None else search.trials
    if total < 1:
        raise TuneforgeError(f"--trials {total}: run at least one trial.")

    tune_dir.mkdir(parents=True, exist_ok=True)
    metric = cfg.train.metric
    direction = "minimize" if metric == "loss" else "maximize"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=cfg.train.seed) if search.sampler == "tpe" else \
        optuna.samplers.RandomSampler(seed=cfg.train.seed)
    pruner = pruner if pruner is not None else build_pruner(search)
    study = optuna.create_study(study_name=STUDY, storage=f"sqlite:///{tune_dir.resolve() / 'study.db'}",
                                direction=direction, sampler=sampler, pruner=pruner, load_if_exists=True)
    for stale in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(stale.number, state=optuna.trial.TrialState.FAIL)  # a trial killed with its process
    check_resumed_space(study, search, tune_dir)  # before config.yaml changes: a refused resume keeps the old one
    (tune_dir / "config.yaml").write_text(dump_config(cfg.model_copy(update={"output_dir": None})), encoding="utf-8")
    done = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,
                                                        optuna.trial.TrialState.PRUNED)))
    todo = max(0, total - done)
    console.print(f"[bold]tune {escape(cfg.name)}[/]: {todo} trial(s) to run ({done} done), {direction} validation "
                  f"{metric}, {search.sampler} sampler, {search.pruner} pruner; folder {escape(str(tune_dir))}")

    def objective(trial: optuna.Trial) -> float:
        params = {key: sample(trial, key, spec) for key, spec in search.space.items()}
        trial_dir = tune_dir / f"trial-{trial.number:03d}"
        trial.set_user_attr("run_dir", str(trial_dir))
        trial_cfg = load_config(TrainConfig, data={**base, "output_dir": str(trial_dir), "name": f"{cfg.name}-trial"
                                                   f"-{trial.number}"}, overrides=as_overrides(params))
        evals = 0

        def on_log(record: dict) -> None:
            nonlocal evals
            if record.get("type") != "eval":
                return
            trial.report(record[metric], evals)
            evals += 1
            if trial.should_prune():
                raise TrialPruned(f"pruned by Optuna's {type(pruner).__name__} at evaluation {evals} (step "
                                  f"{record['step']}): validation {metric} {record[metric]:.4f}")

        from tuneforge.recipes.train import train

        run = train(trial_cfg, progress=False, on_log=on_log)
        return float(run.metrics[f"validation.{metric}"])

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        shown = ", ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
        if trial.state == optuna.trial.TrialState.COMPLETE:
            outcome = f"validation {metric} {trial.value:.4f}"
        else:
            outcome = trial.state.name.lower()
        bar.console.print(f"trial {trial.number}: {escape(shown)} -> {outcome}")
        write_reports(study, tune_dir, metric, cfg.name)
        bar.update(task, advance=1, best=_best_text(study))

    started = time.perf_counter()
    with _trials_bar(progress) as bar:
        task = bar.add_task("trials", total=todo, best="-")
        if todo:
            study.optimize(objective, n_trials=todo, callbacks=[after_trial], catch=())
    result = write_reports(study, tune_dir, metric, cfg.name)
    console.print(f"{todo} trial(s) in {time.perf_counter() - started:.0f} s")
    return TuneResult(dir=tune_dir, study=study, metric=metric, **result)


def build_pruner(search: SearchConfig) -> optuna.pruners.BasePruner:
    """MedianPruner (Golovin et al. 2017, "Google Vizier"): at evaluation k, stop a trial whose metric is worse
    than the median of the completed trials' metrics at evaluation k, once ``startup_trials`` have finished."""
    if search.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=search.startup_trials, n_warmup_steps=search.warmup_evals)


def _trials_bar(enabled: bool) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("best {task.fields[best]}"), TimeElapsedColumn(), TextColumn("ETA"),
                    TimeRemainingColumn(), console=console, disable=not enabled)


def _best_text(study: optuna.Study) -> str:
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return f"{study.best_value:.4f} (trial {study.best_trial.number})" if done else "-"


def sample(trial: optuna.Trial, key: str, spec: Range | list[Any]) -> Any:
    if isinstance(spec, list):
        if all(v is None or isinstance(v, (bool, int, float, str)) for v in spec):
            return trial.suggest_categorical(key, spec)
        # Optuna stores only scalars: lists (e.g. target modules) are chosen by their JSON text
        return json.loads(trial.suggest_categorical(key, [json.dumps(v) for v in spec]))
    if spec.is_int:
        return trial.suggest_int(key, spec.low, spec.high, step=spec.step or 1, log=spec.log)
    return trial.suggest_float(key, spec.low, spec.high, step=spec.step, log=spec.log)


def distribution(spec: Range | list[Any]) -> optuna.distributions.BaseDistribution:
    """The Optuna distribution that :func:`sample` draws ``spec`` from."""
    if isinstance(spec, list):
        scalars = all(v is None or isinstance(v, (bool, int, float, str)) for v in spec)
        return optuna.distributions.CategoricalDistribution(spec if scalars else [json.dumps(v) for v in spec])
    if spec.is_int:
        return optuna.distributions.IntDistribution(spec.low, spec.high, log=spec.log, step=spec.step or 1)
    return optuna.distributions.FloatDistribution(spec.low, spec.high, log=spec.log, step=spec.step)


def _shown(d: optuna.distributions.BaseDistribution) -> str:
    if isinstance(d, optuna.distributions.CategoricalDistribution):
        return "the choices " + json.dumps(list(d.choices))
    kind = "integers" if isinstance(d, optuna.distributions.IntDistribution) else "numbers"
    return f"{kind} from {d.low} to {d.high}" + (" on a log scale" if d.log else "")


def check_resumed_space(study: optuna.Study, search: SearchConfig, tune_dir: Path) -> None:
    """A resumed study keeps how it sampled each path: Optuna refuses other choices, an integer range that became
    a float one (or the reverse) and a log scale switched on or off (a ValueError traceback at the next trial,
    which left it running). Ranges may move."""
    sampled: dict[str, optuna.distributions.BaseDistribution] = {}
    for trial in study.get_trials(deepcopy=False):
        for key, dist in trial.distributions.items():
            sampled.setdefault(key, dist)
    problems = []
    for key, spec in search.space.items():
        if key in sampled:
            try:
                optuna.distributions.check_distribution_compatibility(sampled[key], distribution(spec))
            except ValueError:
                problems.append(f'search.space["{key}"] is now {_shown(distribution(spec))}; the study sampled '
                                f"{_shown(sampled[key])}.")
    if problems:
        raise TuneforgeError(f"{tune_dir}: the study cannot continue with this search space (Optuna keeps a path's "
                             "choices, its integer or number kind and its log scale for a whole study; ranges may "
                             "move). Put these back in its config.yaml, or start a new study with "
                             "`tuneforge tune CONFIG --output NEW_DIR`:", problems)


def as_overrides(params: dict[str, Any]) -> list[str]:
    return [f"{key}={json.dumps(value)}" for key, value in params.items()]


def check_space(base: dict[str, Any], search: SearchConfig) -> None:
    """Every path and every end of its range (each choice) must make a valid training config: a misspelled
    path is an error naming the closest field, found by the same loader that reads overrides."""
    problems = []
    for key, spec in search.space.items():
        if key.split(".")[0] in ("search", "output_dir", "name"):
            problems.append(f'search.space["{key}"]: {key.split(".")[0]} cannot be searched.')
            continue
        values = spec if isinstance(spec, list) else [spec.low, spec.high]
        for value in values:
            try:
                load_config(TrainConfig, data=base, overrides=as_overrides({key: value}))
            except TuneforgeError as exc:
                lines = exc.problems or [str(exc)]
                problems += [f'search.space["{key}"] = {json.dumps(value)}: {line}' for line in lines]
                break
    if problems:
        raise TuneforgeError(f"The search space has {len(problems)} problem(s); fix them and run again:",
                             problems)


def write_reports(study: optuna.Study, tune_dir: Path, metric: str, name: str) -> dict[str, Any]:
    """trials.md (every trial), tune.png, best.json and best.yaml; returns the best trial's summary."""
    trials = study.get_trials(deepcopy=False)
    keys = sorted({k for t in trials for k in t.params})
    lines = [f"| trial | state | validation {metric} | " + " | ".join(keys) + " | run |",
             "|" + "---|" * (len(keys) + 4)]
    for t in trials:
        if t.state == optuna.trial.TrialState.COMPLETE:
            value = f"{t.value:.4f}"
        else:  # Optuna gives a pruned trial its last reported value: show it as such
            value = f"({_last(t):.4f} at evaluation {max(t.intermediate_values) + 1})" if t.intermediate_values \
                else "-"
        lines.append(f"| {t.number} | {t.state.name.lower()} | {value} | " +
                     " | ".join(_short(t.params.get(k, "")) for k in keys) + f" | {t.user_attrs.get('run_dir', '')} |")
    write_atomic_text(tune_dir / "trials.md", "\n".join(lines) + "\n")
    _plot(trials, tune_dir / "tune.png", metric, study.direction == optuna.study.StudyDirection.MINIMIZE)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        return {"best_value": None, "best_params": {}, "best_config": None}
    best = study.best_trial
    run_dir = Path(best.user_attrs["run_dir"])
    best_cfg = load_config(TrainConfig, path=run_dir / "config.yaml")
    best_cfg = best_cfg.model_copy(update={"name": name, "output_dir": None, "search": None})
    write_atomic_text(tune_dir / "best.yaml", f"# best of {len(complete)} complete trial(s): trial {best.number}, "
                      f"validation {metric} {best.value:.4f}\n" + dump_config(best_cfg))
    write_json(tune_dir / "best.json", {"trial": best.number, "value": best.value, "metric": f"validation.{metric}",
                                        "params": best.params, "run_dir": str(run_dir)})
    return {"best_value": best.value, "best_params": best.params, "best_config": tune_dir / "best.yaml"}


def _last(trial: Any) -> float:
    return trial.intermediate_values[max(trial.intermediate_values)]


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _plot(trials: list, path: Path, metric: str, minimize: bool) -> None:
    """Left: every trial's value and the best so far. Right: the value against the first numeric parameter
    (the learning rate, usually), on a log axis where it was sampled on one."""
    from matplotlib.ticker import MaxNLocator, NullFormatter

    from tuneforge.evaluation.plots import plt

    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED and t.intermediate_values]
    numeric = next((k for t in trials for k, d in t.distributions.items()
                    if isinstance(d, (optuna.distributions.FloatDistribution, optuna.distributions.IntDistribution))),
                   None)
    fig, axes = plt.subplots(1, 2 if numeric else 1, figsize=(11 if numeric else 7, 4), squeeze=False)
    ax = axes[0, 0]
    ax.plot([t.number for t in done], [t.value for t in done], "o", color="tab:blue", label="complete")
    ax.plot([t.number for t in pruned], [_last(t) for t in pruned], "x", color="tab:gray", label="pruned (last eval)")
    best, xs, ys = None, [], []
    for t in sorted(done, key=lambda t: t.number):
        if best is None or (t.value < best if minimize else t.value > best):
            best = t.value
        xs.append(t.number)
        ys.append(best)
    if xs:
        ax.step(xs, ys, where="post", color="tab:red", label="best so far")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(f"validation {metric}")
    ax.legend(loc="best", fontsize=8)
    ax.set_title("Hyperparameter search", fontsize=10)
    if numeric:
        ax = axes[0, 1]
        for group, marker, colour, label in ((done, "o", "tab:blue", "complete"),
                                             (pruned, "x", "tab:gray", "pruned (last eval)")):
            shown = [t for t in group if numeric in t.params]
            ax.plot([t.params[numeric] for t in shown], [t.value if t in done else _last(t) for t in shown], marker,
                    color=colour, label=label)
        if any(getattr(t.distributions.get(numeric), "log", False) for t in trials):
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # labelled minor ticks overlap on a narrow range
        ax.set_xlabel(numeric)
        ax.set_title(f"validation {metric} against {numeric}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
