"""The training recipe: setup, fit, evaluate, save. ``tuneforge train CONFIG.yaml``."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.markup import escape

from tuneforge.config import TrainConfig, dump_config, load_config
from tuneforge.data.splits import subsample_stratified
from tuneforge.errors import TuneforgeError
from tuneforge.evaluation.inference import predict_proba
from tuneforge.evaluation.metrics import classification_metrics, mean_loss
from tuneforge.evaluation.plots import plot_confusion, plot_loss
from tuneforge.methods import build_method
from tuneforge.methods.params import count_parameters
from tuneforge.models.attention import restore_attention, use_training_attention
from tuneforge.models.backbones import load_backbone, resolve_model
from tuneforge.models.first_token import use_first_token_shortcut
from tuneforge.models.precision import Precision, autocast, resolve_precision
from tuneforge.recipes.runfolder import (RESUMABLE, environment, flatten, new_run_dir, output_dir_in_use, read_json,
                                         recipe_of, run_record, update_status, write_json)
from tuneforge.run import Run
from tuneforge.tracking import Tracker, open_tracker
from tuneforge.tasks import get_task
from tuneforge.training import distributed
from tuneforge.training.allocator import reuse_freed_memory
from tuneforge.training.batching import encode
from tuneforge.training.checkpoint import write_atomic_folder
from tuneforge.training.fast_dropout import use_fast_dropout
from tuneforge.training.loop import count_steps, fit

log = logging.getLogger(__name__)
console = Console(stderr=True)


def resolve_device(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(setting)
    except RuntimeError:
        raise TuneforgeError(f'train.device = "{setting}" is not a device; use auto, cpu, cuda or cuda:N.') from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TuneforgeError(f'train.device = "{setting}", but no CUDA GPU is available. Use device: auto or cpu.')
    return device


def open_run_dir(schema: type, build: Callable[[], Any], resume: str | Path | None, overrides: list[str] | None,
                 command: str) -> tuple[Any, Path]:
    """(config, run folder) of a new run (``build()``; the folder must be new or empty) or of the interrupted
    run ``resume`` (its own config.yaml, plus ``overrides``). ``command``: train or pretrain, for the messages."""
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / "config.yaml").exists():
            raise TuneforgeError(f"--resume {run_dir}: no config.yaml there, so it is not a tuneforge run folder.")
        if (run_dir / "model").is_dir():
            raise TuneforgeError(f"--resume {run_dir}: this run already finished (its model/ folder exists).")
        recipe = recipe_of(run_record(run_dir) or {})
        if recipe != command:  # its config.yaml would fail the other schema key by key, which says nothing useful
            fix = f"Continue it with `tuneforge {recipe} --resume {run_dir}`." if recipe in RESUMABLE \
                else "Only train and pretrain runs resume."
            raise TuneforgeError(f"--resume {run_dir}: it holds a tuneforge {recipe} run, not a {command} run. {fix}")
        return load_config(schema, path=run_dir / "config.yaml", overrides=overrides), run_dir
    cfg = build()
    run_dir = new_run_dir(cfg.name, cfg.output_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise TuneforgeError(f"output_dir {run_dir} is a file; the run needs a folder there. Choose another "
                             "output_dir (a new or empty folder).")
    if run_dir.exists() and any(run_dir.iterdir()):
        raise TuneforgeError(output_dir_in_use(run_dir, command))
    return cfg, run_dir


def start_loop(loop) -> tuple[torch.device, Precision]:
    """Seed, thread count, device and precision from a config's ``train:`` section: how every recipe starts."""
    torch.manual_seed(loop.seed)
    if loop.reuse_memory:
        reuse_freed_memory()
    if loop.num_threads:
        torch.set_num_threads(loop.num_threads)
    device = resolve_device(loop.device)
    return device, resolve_precision(loop.precision, device)


def as_config(config: TrainConfig | dict | str | Path, overrides: list[str] | None = None) -> TrainConfig:
    if isinstance(config, TrainConfig):
        return load_config(TrainConfig, data=config.model_dump(), overrides=overrides) if overrides else config
    if isinstance(config, dict):
        return load_config(TrainConfig, data=config, overrides=overrides)
    return load_config(TrainConfig, path=config, overrides=overrides)


def train(config: TrainConfig | dict | str | Path, overrides: list[str] | None = None, *,
          resume: str | Path | None = None, progress: bool = True, _stop_after: int | None = None,
          on_log: Callable[[dict], None] | None = None) -> Run:
    """Fine-tune a classifier and return the finished :class:`~tuneforge.run.Run`.

    ``config`` is a :class:`TrainConfig`, a mapping or a YAML path; ``overrides`` are ``a.b=c`` strings.
    ``resume`` continues the interrupted run in that folder from its last checkpoint (its own config).
    ``on_log`` sees every log.jsonl record as it is written; an exception it raises stops the run, and the
    exception's ``run_status`` attribute (default "failed") goes to run.json.
    """
    cfg, run_dir = open_run_dir(TrainConfig, lambda: as_config(config, overrides), resume, overrides, "train")
    loop = cfg.train
    device, precision = start_loop(loop)
    device = distributed.start(device, loop.batch_size)  # torchrun: join the process group (docs/DISTRIBUTED.md)
    main = distributed.is_main()  # only rank 0 writes the run folder
    run_dir = Path(distributed.on_main(lambda: str(run_dir)))  # the folder rank 0 named (a timestamp)

    task = get_task(cfg.task)  # the one dispatch on task: (tasks/__init__.py)
    task.part("check_config")(cfg)
    splits = task.part("load_splits")(cfg.data, loop.seed)
    body_extra: dict[str, Any] = {}
    if cfg.continual is not None:  # run A checked, labels in A's order, rehearsal sample added (continual/)
        from tuneforge.continual.recipe import start as start_continual

        splits, body_extra["continual"] = start_continual(cfg, splits)
    model_path = resolve_model(cfg.model)  # a wrong model path fails before the run folder is created
    if cfg.contrastive is not None and (cfg.tracking.tensorboard or cfg.tracking.mlflow):
        raise TuneforgeError("tracking: the contrastive recipe (contrastive:) does not report to TensorBoard or "
                             "MLflow yet; set tracking.tensorboard=false and tracking.mlflow=false, or train "
                             "without contrastive:.")
    if cfg.contrastive is not None and distributed.world().enabled:
        raise TuneforgeError("contrastive: the SetFit-style recipe trains in one process; run it without torchrun.")
    if cfg.prompt is not None:  # PET: the verbalizer's keys and {text_pair} against the data, before the folder
        from tuneforge.prompting.pet import check_verbalizer_labels
        from tuneforge.recipes.zeroshot import check_pairs

        check_verbalizer_labels(cfg.prompt, splits.labels)
        check_pairs(splits, cfg.prompt.template, cfg.data.text_pair_column)
    if cfg.augment is not None:  # before the folder exists: a bad back-translation hook fails first
        from tuneforge.augment import augment_examples

        splits.train = augment_examples(splits.train, cfg.augment, model_path, seed=loop.seed)
    cfg_to_save = cfg.model_copy(update={"output_dir": run_dir})
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(dump_config(cfg_to_save), encoding="utf-8")
        write_json(run_dir / "labels.json", splits.labels)
        update_status(run_dir, status="running", name=cfg.name, started=time.strftime("%Y-%m-%dT%H:%M:%S"),
                      data={"name": splits.name, "source": splits.source, "train": len(splits.train),
                            "validation": len(splits.validation), "test": len(splits.test)},
                      precision=precision, device=str(device), environment=environment(),
                      **distributed.run_info())
    tracker = None
    try:
        if cfg.contrastive is not None:
            from tuneforge.fewshot.contrastive import train_contrastive

            return train_contrastive(cfg, run_dir, splits, device, precision, progress)
        if not main:  # ranks > 0 log nothing: rank 0 writes log.jsonl and reports to the trackers
            tracker = Tracker([])
        else:
            mlflow_run = read_json(run_dir / "run.json").get("mlflow_run_id") if resume is not None else None
            tracker = open_tracker(cfg_to_save, run_dir, on_log, mlflow_run_id=mlflow_run)
        if tracker.mlflow_run_id:
            update_status(run_dir, mlflow_run_id=tracker.mlflow_run_id)
        return task.part("train_body")(cfg, run_dir, splits, device, precision, resume is not None, progress,
                                        _stop_after, tracker, **body_extra)
    except BaseException as exc:
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else getattr(exc, "run_status", "failed")
        if main:
            update_status(run_dir, status=status, error=str(exc)[:2000])
        if tracker is not None:
            tracker.finish(run_dir, {}, status)
        raise


def apply_method(backbone, cfg: TrainConfig, n_train: int, precision: str):
    """The method on the backbone, with the loop's CPU speed-ups; returns (method, model). Shared by every
    task's training body."""
    loop = cfg.train
    if loop.fast_dropout:
        use_training_attention(backbone.model)
    method = build_method(cfg.method)
    method.plan(count_steps(n_train, loop))
    model = method.apply(backbone)
    if loop.fast_dropout:
        use_fast_dropout(model)
    if precision == "bf16" and not method.saves_base:
        # The frozen base is rebuilt from the backbone when the run is loaded, so it can be held in bf16
        # while training: autocast would otherwise re-cast every frozen weight on every forward pass.
        for param in model.parameters():
            if not param.requires_grad:
                param.data = param.data.to(torch.bfloat16)
    return method, model


def _train(cfg: TrainConfig, run_dir: Path, splits, device, precision, resume: bool, progress: bool,
           stop_after: int | None, tracker: Tracker, continual=None) -> Run:
    loop = cfg.train
    console.quiet = not distributed.is_main()  # under torchrun one summary, from rank 0
    if cfg.prompt is not None:  # PET: the language model classifies through the template (prompting/pet.py)
        from tuneforge.prompting.pet import load_prompt_backbone

        backbone, inputs = load_prompt_backbone(cfg.model, cfg.prompt, splits.labels, cfg.data.max_length,
                                                 check_words=True)
        if distributed.is_main():
            write_json(run_dir / "prompt.json", {**inputs.scorer.describe(), "training": "pet"})
        splits = dataclasses.replace(splits, **{name: inputs.render(getattr(splits, name))
                                                for name in ("train", "validation", "test")})
    else:
        backbone = load_backbone(cfg.model, splits.labels)
        if continual is not None:  # task B starts from run A's weights
            continual.init_weights(backbone.model)
    tokenizer = backbone.tokenizer
    method, model = apply_method(backbone, cfg, len(splits.train), precision)
    if loop.first_token_shortcut:
        use_first_token_shortcut(model)
    n_trainable, n_total = count_parameters(model)
    console.print(f"[bold]{escape(cfg.name)}[/]: {cfg.method.name} on {escape(backbone.path)} - trainable parameters "
                  f"{n_trainable:,} of {n_total:,} ({100 * n_trainable / n_total:.3f}%), precision {precision}, "
                  f"{len(splits.train):,} training examples")

    max_len = cfg.data.max_length
    enc = {name: encode(getattr(splits, name), tokenizer, splits.labels, max_len)
           for name in ("train", "validation", "test")}
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    side = getattr(tokenizer, "padding_side", "right")
    eval_kwargs: dict[str, Any] = dict(batch_size=max(64, loop.batch_size), precision=precision, device=device,
                                       pad_id=pad_id, padding_side=side)
    val = enc["validation"]
    if cfg.data.max_eval_samples and cfg.data.max_eval_samples < len(splits.validation):
        sample = subsample_stratified(splits.validation, cfg.data.max_eval_samples, seed=loop.seed)
        val = encode(sample, tokenizer, splits.labels, max_len)

    def evaluate() -> dict[str, float]:
        probs = predict_proba(model, val, **eval_kwargs)
        m = classification_metrics(val.labels, probs.argmax(-1).tolist(), splits.labels)
        return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "loss": mean_loss(probs, val.labels)}

    penalty = None if continual is None else continual.penalty(
        model.to(device), tokenizer, max_len, seed=loop.seed, pad_id=pad_id, padding_side=side, device=device,
        autocast=lambda: autocast(precision, device))
    result = fit(model, enc["train"], loop, run_dir=run_dir, precision=precision, device=device, pad_id=pad_id,
                 padding_side=side, evaluate=evaluate, resume=resume, progress=progress, stop_after=stop_after,
                 method=method, on_log=tracker.log, penalty=penalty)
    state = result.state
    if not distributed.is_main():
        return wait_for_main(run_dir)

    started = time.perf_counter()
    probs = predict_proba(model, enc["test"], **eval_kwargs)
    test = classification_metrics(enc["test"].labels, probs.argmax(-1).tolist(), splits.labels)
    test["loss"] = mean_loss(probs, enc["test"].labels)
    test["seconds"] = time.perf_counter() - started
    metrics = fit_metrics(state, loop, precision, device, n_trainable, n_total, test)
    if continual is not None:  # A's test split through B's model: what was forgotten
        metrics |= continual.finish(run_dir, model, tokenizer, max_len,
                                    lambda data: predict_proba(model, data, **eval_kwargs))
    write_json(run_dir / "metrics.json", metrics)
    log_records = [r for r in _read_log(run_dir / "log.jsonl") if r.get("type") == "train"]
    plot_loss(log_records, state.evals, run_dir / "loss.png", loop.metric)
    plot_confusion(test["confusion_matrix"], splits.labels, run_dir / "confusion_matrix.png",
                   f"{cfg.name}: test accuracy {test['accuracy']:.3f}")

    save_model(run_dir, backbone, method, model, tokenizer, splits.labels)
    tracker.finish(run_dir, metrics)
    console.print(f"test accuracy {test['accuracy']:.4f}, macro-F1 {test['macro_f1']:.4f}; "
                  f"{metrics['train.samples_per_second']:.1f} samples/s; run folder: {escape(str(run_dir))}")
    distributed.barrier()  # the other ranks wait in wait_for_main until model/ is written
    return Run.load(run_dir)


def wait_for_main(run_dir: Path) -> Run:
    """Ranks > 0 after training: rank 0 tests, plots and saves the model; they wait for it, then load it."""
    distributed.barrier()
    return Run.load(run_dir)


def peak_memory_mb(device: torch.device) -> float | None:
    """Peak GPU memory allocated by torch on CUDA; on CPU the process's peak resident memory (all of it:
    Python, torch, data, model), which is what ``tuneforge compare`` reads from each run's own process."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource
    except ImportError:  # Windows
        return None
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def _read_log(path: Path) -> list[dict]:
    import json

    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def fit_metrics(state, loop, precision, device, n_trainable: int, n_total: int, test: dict) -> dict:
    """metrics.json of a run trained by :func:`fit`: throughput, parameters, the validation scores and ``test``.
    With early stopping the model holds the best evaluation's weights, so that evaluation is reported."""
    best_eval = [e for e in state.evals if e["step"] == state.best_step] if loop.early_stopping_patience else []
    final_val = best_eval[-1] if best_eval else (state.evals[-1] if state.evals else {})
    return flatten("", {
        "train": {"seconds": state.seconds, "samples": state.samples, "tokens": state.tokens, "steps": state.step,
                  "samples_per_second": state.samples / max(state.seconds, 1e-9),
                  "tokens_per_second": state.tokens / max(state.seconds, 1e-9),
                  "padding_fraction": 1 - state.tokens / max(state.padded_tokens, 1),
                  "stopped_early": state.stopped_early, "best_step": state.best_step,
                  "precision": precision, "peak_memory_mb": peak_memory_mb(device)},
        "trainable_parameters": n_trainable, "total_parameters": n_total,
        "trainable_percent": 100 * n_trainable / n_total,
        "validation": {k: v for k, v in final_val.items() if k not in ("step", "epoch")},
        "test": test,
    })


def save_model(run_dir: Path, backbone, method, model, tokenizer, labels: list[str]) -> None:
    """The run's last step: model/ written atomically (method weights, tokenizer, labels.json), checkpoints
    dropped, run.json marked complete. A run without model/ never finished."""
    def write_model(folder: Path) -> None:
        restore_attention(backbone.model)
        method.save(model, folder)
        tokenizer.save_pretrained(folder)
        write_json(folder / "labels.json", labels)

    write_atomic_folder(run_dir / "model", write_model)
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    update_status(run_dir, status="complete", finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
