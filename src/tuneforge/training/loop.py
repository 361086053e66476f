"""The training loop: plain, visible, resumable.

    for each optimizer step:
        for each of the accumulated micro-batches:   forward under autocast, loss / accumulation, backward
                                                     (+ R-Drop's second pass, FGM/PGD's adversarial passes)
        clip, AdamW step, schedule step, EMA update
        every log_every:     a log.jsonl line          every eval_every: evaluate, keep the best, early-stop
        every checkpoint_every: an atomic checkpoint

Data order is a function of (seed, epoch) and the dropout RNG is checkpointed, so a resumed run
reaches the same final weights as an uninterrupted one. Under torchrun each process trains on its slice of
every batch and DDP averages the gradients; rank 0 evaluates and writes the files (training/distributed.py).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from tuneforge.config.schema import TrainLoopConfig
from tuneforge.models.precision import Precision, autocast
from tuneforge.training import distributed
from tuneforge.training.batching import Encoded, batch_order, collate
from tuneforge.training.checkpoint import list_checkpoints, load_checkpoint, load_extra_state, \
    load_trainable_state, save_checkpoint, trainable_state
from tuneforge.training.dropout import set_dropout
from tuneforge.training.ema import EMA
from tuneforge.training.grad_checkpointing import enable_gradient_checkpointing
from tuneforge.training.losses import build_loss
from tuneforge.training.step import micro_step
from tuneforge.training.optim import build_optimizer, build_scheduler
from tuneforge.training.progress import training_bar

if TYPE_CHECKING:
    from tuneforge.methods.base import Method

Evaluate = Callable[[], dict[str, float]]
# A recipe's own loss for one micro-batch: (model, inputs incl. labels, the batch's example indices) -> loss.
# Distillation (compression/distill.py) reads the teacher's logits for those examples.
LossFn = Callable[[nn.Module, dict[str, torch.Tensor], list[int]], torch.Tensor]


@dataclass
class LoopState:
    step: int = 0                 # optimizer steps done
    epoch: int = 0
    step_in_epoch: int = 0        # optimizer steps done in the current epoch
    samples: int = 0
    tokens: int = 0               # real (non-padding) tokens
    padded_tokens: int = 0        # tokens including padding, as computed
    seconds: float = 0.0          # time in forward/backward/step only (not evaluation or checkpoints)
    best_metric: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0
    stopped_early: bool = False
    evals: list[dict] = field(default_factory=list)


@dataclass
class FitResult:
    state: LoopState
    total_steps: int


def count_steps(n_examples: int, cfg: TrainLoopConfig, epochs: float | None = None) -> int:
    """Optimizer steps for ``epochs`` (default: the configured training; ``max_steps`` wins if set)."""
    micro_per_epoch = math.ceil(n_examples / cfg.batch_size)
    steps_per_epoch = math.ceil(micro_per_epoch / cfg.gradient_accumulation_steps)
    if epochs is not None:
        return steps_per_epoch
    return cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))


def _improved(metric: str, value: float, best: float | None) -> bool:
    if best is None:
        return True
    return value < best if metric == "loss" else value > best


@torch.enable_grad()  # a caller may have switched gradients off globally (torch.set_grad_enabled(False))
def fit(model: nn.Module, train: Encoded, cfg: TrainLoopConfig, *, run_dir: Path, precision: Precision,
        device: torch.device, pad_id: int, padding_side: str = "right", evaluate: Evaluate | None = None,
        resume: bool = False, progress: bool = True, stop_after: int | None = None,
        method: Method | None = None, loss_fn: LossFn | None = None, on_log: Callable[[dict], None] | None = None,
        penalty: Callable[[nn.Module], torch.Tensor] | None = None) -> FitResult:
    """Train ``model`` in place. ``method`` gets its ``after_step`` call after every optimizer step and
    its state checkpointed. ``loss_fn`` replaces the model's own cross-entropy (default). ``penalty(model)``, a
    term on the weights alone (EWC, continual/ewc.py), is added to every micro-batch's loss. ``on_log`` sees
    every log.jsonl record as it is written (trackers; an exception it raises stops the run, which is how
    ``tuneforge tune`` prunes a trial). ``stop_after`` simulates an interruption after that many steps (tests)."""
    model.to(device).train()
    set_dropout(model, cfg.dropout)
    disable_checkpointing = enable_gradient_checkpointing(model) if cfg.gradient_checkpointing else None
    main = distributed.is_main()  # under torchrun only rank 0 writes log, checkpoints and the progress bar
    optimizer = build_optimizer(model, cfg)
    lengths = train.lengths()
    steps_per_epoch = count_steps(len(train), cfg, epochs=1)
    total_steps = count_steps(len(train), cfg)
    scheduler = build_scheduler(optimizer, cfg, total_steps)
    ckpt_dir = run_dir / "checkpoints"
    log_path = run_dir / "log.jsonl"
    state, best = LoopState(), None
    ema = EMA(model, cfg.ema_decay) if cfg.ema_decay else None  # the averaged weights are evaluated and saved

    if resume and (found := list_checkpoints(ckpt_dir)):
        loop_dict, best = load_checkpoint(found[-1], model, optimizer, scheduler, method)
        state = LoopState(**loop_dict)
        if ema is not None:
            ema.load_state_dict(load_extra_state(found[-1]))
    if resume and main:
        _truncate_log(log_path, state.step)  # steps after the checkpoint (or all, without one) run again
    distributed.decorrelate_dropout(cfg.seed, state.step)  # ranks > 0: their own dropout masks

    def log(record: dict) -> None:
        if not main:
            return
        _append_log(log_path, record)
        if on_log is not None:
            on_log(record)

    def checkpoint() -> None:
        if main:
            save_checkpoint(ckpt_dir, state.step, model, optimizer, scheduler, asdict(state), best,
                            cfg.keep_checkpoints, method, extra=ema.state_dict() if ema is not None else None)
        distributed.barrier()

    def run_eval() -> None:
        if evaluate is None:
            return
        if ema is None:
            return evaluate_and_track()
        with ema.applied(model):  # the averaged weights are evaluated, and kept as the best
            evaluate_and_track()

    def evaluate_and_track() -> None:
        nonlocal best
        metrics = distributed.on_main(evaluate)  # every rank gets rank 0's metrics: the same early stop
        value = metrics[cfg.metric]
        record = {"step": state.step, "epoch": round(state.step / steps_per_epoch, 3), **metrics}
        state.evals.append(record)
        if _improved(cfg.metric, value, state.best_metric):
            state.best_metric, state.best_step, state.evals_without_improvement = value, state.step, 0
            best = _best_state(model, method) if cfg.early_stopping_patience else None
        else:
            state.evals_without_improvement += 1
            if cfg.early_stopping_patience and state.evals_without_improvement >= cfg.early_stopping_patience:
                state.stopped_early = True
        log({"type": "eval", **record})

    compute_loss = build_loss(cfg, loss_fn)  # the model's CE, label smoothing, R-Drop or the recipe's own
    if penalty is not None:  # micro-batch weights sum to 1 per step, so the penalty counts once per step
        data_loss = compute_loss
        compute_loss = lambda model, inputs, indices: data_loss(model, inputs, indices) + penalty(model)  # noqa: E731

    def probe() -> torch.Tensor:  # one example's loss: which parameters get gradients (DDP's setup)
        with autocast(precision, device):
            inputs = {k: v.to(device) for k, v in collate(train, [0], pad_id, padding_side).items()}
            return compute_loss(model, inputs, [0])

    net = distributed.wrap(model, device, probe)  # DDP under torchrun, else the model itself
    window_loss, window_samples, window_seconds = 0.0, 0, 0.0
    with training_bar(progress and main) as bar:
        task = bar.add_task("training", total=total_steps, completed=state.step, loss="-", rate="-")
        while state.step < total_steps and not state.stopped_early:
            batches = batch_order(lengths, cfg.batch_size, seed=cfg.seed + state.epoch, shuffle=True,
                                  group_by_length=cfg.group_by_length)
            acc = cfg.gradient_accumulation_steps
            groups = [batches[i:i + acc] for i in range(0, len(batches), acc)]
            for group in groups[state.step_in_epoch:]:
                started = time.perf_counter()
                group_samples = sum(len(b) for b in group)
                step_loss, tokens, padded_tokens = 0.0, 0, 0
                for i, indices in enumerate(group):
                    # This process's slice of the micro-batch (all of it without torchrun), weighted by its
                    # share of the step's samples (the last micro-batch may be short).
                    part = distributed.shard(indices, group_samples)
                    inputs = {k: v.to(device) for k, v in collate(train, part.indices, pad_id, padding_side).items()}
                    with distributed.accumulating(net, last=i == len(group) - 1):
                        loss = micro_step(net, inputs, part.indices, compute_loss, part.weight, cfg,
                                          lambda: autocast(precision, device))
                    step_loss += loss.item() * part.share
                    if part.share:
                        tokens += int(inputs["attention_mask"].sum())
                        padded_tokens += inputs["attention_mask"].numel()
                step_loss, tokens, padded_tokens = distributed.sum_over_ranks(step_loss, tokens, padded_tokens)
                state.tokens += int(tokens)
                state.padded_tokens += int(padded_tokens)
                if cfg.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None],
                                                   cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                if method is not None:
                    method.after_step(model, state.step + 1)
                if ema is not None:
                    ema.update(model, state.step + 1)
                optimizer.zero_grad(set_to_none=True)
                elapsed = time.perf_counter() - started
                state.step += 1
                state.step_in_epoch += 1
                state.samples += group_samples
                state.seconds += elapsed
                window_loss += step_loss
                window_samples += group_samples
                window_seconds += elapsed
                bar.update(task, advance=1, loss=f"{step_loss:.4f}", rate=f"{state.samples / state.seconds:.0f}")
                if state.step % cfg.log_every == 0 or state.step == total_steps:
                    n_steps = state.step % cfg.log_every or cfg.log_every
                    log({"type": "train", "step": state.step, "epoch": state.epoch,
                         "loss": window_loss / max(1, n_steps), "learning_rate": scheduler.get_last_lr()[0],
                         "samples_per_second": window_samples / max(window_seconds, 1e-9)})
                    window_loss, window_samples, window_seconds = 0.0, 0, 0.0
                last_of_epoch = state.step_in_epoch == len(groups)
                if (cfg.eval_every and state.step % cfg.eval_every == 0) or \
                        (cfg.eval_every is None and last_of_epoch) or state.step == total_steps:
                    if not state.evals or state.evals[-1]["step"] != state.step:
                        run_eval()
                if last_of_epoch:
                    state.epoch += 1
                    state.step_in_epoch = 0
                if cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0 and state.step < total_steps:
                    checkpoint()
                if stop_after is not None and state.step >= stop_after:
                    raise KeyboardInterrupt(f"stopped after {stop_after} steps (test hook)")
                if state.step >= total_steps or state.stopped_early:
                    break
            else:
                continue
            break
    if best is not None and state.best_step != state.step:
        _restore_best(model, method, best)  # early stopping: back to the best evaluation's weights
    elif ema is not None:
        ema.copy_to(model)  # the averaged weights are the result
    if disable_checkpointing is not None:
        disable_checkpointing()
    return FitResult(state=state, total_steps=total_steps)


METHOD_KEY = "method/"  # prefix of the method's own state in the best-weights dict (parameter names have no "/")


def _best_state(model: nn.Module, method: Method | None) -> dict[str, torch.Tensor]:
    """The trainable weights and the method's own state (AdaLoRA's rank masks belong to the weights)."""
    best = trainable_state(model)
    if method is not None:
        best |= {METHOD_KEY + k: v.detach().cpu().clone() for k, v in method.state_dict().items()}
    return best


def _restore_best(model: nn.Module, method: Method | None, best: dict[str, torch.Tensor]) -> None:
    load_trainable_state(model, {k: v for k, v in best.items() if not k.startswith(METHOD_KEY)})
    if method is not None:
        method.load_state_dict(model, {k[len(METHOD_KEY):]: v for k, v in best.items() if k.startswith(METHOD_KEY)})


def _append_log(path: Path, record: dict) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines written after the checkpoint we resume from (they will be written again)."""
    if not path.exists():
        return
    keep = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step]
    path.write_text("".join(line + "\n" for line in keep), encoding="utf-8")
