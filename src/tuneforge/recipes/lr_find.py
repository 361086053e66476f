"""The learning-rate range test as a recipe: ``tuneforge lr-find CONFIG.yaml``.

Same model, method, data, batch size, precision and optimizer (AdamW, weight decay, clipping) as
``tuneforge train`` would use, but the rate grows exponentially each step instead of following the schedule
(training/lr_range.py has the method and the suggestion rule). It trains whatever the method trains. Nothing of
the user's is changed and no weights are saved: the folder gets lr_find.json (rates, losses, suggestions),
lr_find.png and the resolved config.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from tuneforge.config import TrainConfig, dump_config
from tuneforge.data.source import load_splits
from tuneforge.errors import TuneforgeError
from tuneforge.methods import build_method
from tuneforge.models.attention import use_training_attention
from tuneforge.models.backbones import load_backbone, resolve_model
from tuneforge.models.first_token import use_first_token_shortcut
from tuneforge.models.precision import autocast
from tuneforge.recipes.runfolder import (check_new_folder, environment, new_run_dir, refuse_sections,
                                         require_text_classification, write_json)
from tuneforge.recipes.train import as_config, start_loop
from tuneforge.training.batching import batch_order, collate, encode
from tuneforge.training.fast_dropout import use_fast_dropout
from tuneforge.training.lr_range import RangeTest, lr_at, plot_range_test
from tuneforge.training.optim import build_optimizer
from tuneforge.training.progress import training_bar

console = Console(stderr=True)


@dataclass
class LrFindResult:
    dir: Path
    suggested: float | None
    suggestions: dict[str, float | None]
    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    stopped_early: bool


@torch.enable_grad()  # a caller may have switched gradients off globally (torch.set_grad_enabled(False))
def lr_find(config: TrainConfig | dict | str | Path, overrides: list[str] | None = None, *,
            start_lr: float = 1e-7, end_lr: float = 1.0, steps: int = 100, smoothing: float = 0.98,
            diverge: float = 4.0, output_dir: str | Path | None = None, progress: bool = True) -> LrFindResult:
    """Run the range test for a training config; return the curve and the suggested learning rate.

    ``output_dir`` defaults to runs/lr-find-<name>-<timestamp>; it must not exist or be empty."""
    if not 0 < start_lr < end_lr:
        raise TuneforgeError(f"--start-lr {start_lr:g} and --end-lr {end_lr:g}: need 0 < start-lr < end-lr, "
                             "e.g. --start-lr 1e-7 --end-lr 1.")
    if steps < 5:
        raise TuneforgeError(f"--steps {steps}: the range test needs at least 5 steps (100 is usual).")
    if not 0 <= smoothing < 1 or diverge <= 1:
        raise TuneforgeError(f"smoothing {smoothing:g} must be in [0, 1) and diverge {diverge:g} above 1.")
    cfg = as_config(config, overrides)
    require_text_classification(cfg.task, f"config {config}" if isinstance(config, (str, Path)) else "This config",
                                "tuneforge lr-find", "Run lr-find on a text classification config.")
    refuse_sections(cfg, "tuneforge lr-find")
    out = Path(output_dir) if output_dir is not None else new_run_dir(f"lr-find-{cfg.name}", None)
    check_new_folder(out, "--output")  # before the test: a path inside a file failed only after it, with a traceback
    loop = cfg.train
    device, precision = start_loop(loop)
    splits = load_splits(cfg.data, loop.seed)
    model_path = resolve_model(cfg.model)
    if cfg.augment is not None:  # the data train would see: the examples and their edited copies
        from tuneforge.augment import augment_examples

        splits.train = augment_examples(splits.train, cfg.augment, model_path, seed=loop.seed)

    backbone = load_backbone(cfg.model, splits.labels)
    if loop.fast_dropout:
        use_training_attention(backbone.model)
    method = build_method(cfg.method)
    method.plan(steps)
    model = method.apply(backbone)
    if loop.fast_dropout:
        use_fast_dropout(model)
    if loop.first_token_shortcut:
        use_first_token_shortcut(model)
    model.to(device).train()
    tokenizer = backbone.tokenizer
    train = encode(splits.train, tokenizer, splits.labels, cfg.data.max_length)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    side = getattr(tokenizer, "padding_side", "right")

    optimizer = build_optimizer(model, loop)
    test = RangeTest(smoothing=smoothing, diverge=diverge)
    started = time.perf_counter()
    batches: list[list[int]] = []
    epoch = 0
    with training_bar(progress) as bar:
        task = bar.add_task("lr range test", total=steps, loss="-", rate="-")
        for step in range(steps):
            if not batches:  # cycle through epochs, in the same order training would see them
                batches = batch_order(train.lengths(), loop.batch_size, seed=loop.seed + epoch, shuffle=True,
                                      group_by_length=loop.group_by_length)
                epoch += 1
            indices = batches.pop(0)
            lr = lr_at(step, steps, start_lr, end_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            inputs = {k: v.to(device) for k, v in collate(train, indices, pad_id, side).items()}
            with autocast(precision, device):
                loss = model(**inputs).loss
            loss.backward()
            if loop.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None],
                                               loop.max_grad_norm)
            optimizer.step()
            method.after_step(model, step + 1)
            optimizer.zero_grad(set_to_none=True)
            stop = test.add(lr, loss.item())
            bar.update(task, advance=1, loss=f"{loss.item():.4f}", rate=f"lr {lr:.1e}")
            if stop:
                break

    suggestions = test.suggestions()
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(dump_config(cfg.model_copy(update={"output_dir": None})), encoding="utf-8")
    report: dict[str, Any] = {
        "suggested": suggestions["steepest"], "rule": "steepest descent of the smoothed loss (see docs/TRAINING.md)",
        "suggestions": suggestions, "start_lr": start_lr, "end_lr": end_lr, "steps": steps,
        "steps_run": len(test.lrs), "stopped_early": test.stopped_early, "smoothing": smoothing, "diverge": diverge,
        "method": cfg.method.name, "model": cfg.model, "batch_size": loop.batch_size, "precision": precision,
        "seconds": time.perf_counter() - started, "environment": environment(),
        "lrs": test.lrs, "losses": test.losses, "smoothed": test.smoothed,
    }
    write_json(out / "lr_find.json", _finite(report))
    plot_range_test(test, suggestions, out / "lr_find.png", f"{cfg.name}: {cfg.method.name}, batch {loop.batch_size}")
    return LrFindResult(dir=out, suggested=suggestions["steepest"], suggestions=suggestions, lrs=test.lrs,
                        losses=test.losses, smoothed=test.smoothed, stopped_early=test.stopped_early)


def _finite(data: Any) -> Any:
    """JSON has no NaN or infinity: a diverged loss is written as null."""
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_finite(v) for v in data]
    if isinstance(data, float) and not (data == data and abs(data) != float("inf")):
        return None
    return data
