"""Train an already-built model (pruned, or a student) with the training loop and write a run folder.

The same steps as ``recipes/train.py`` after the backbone is loaded: the CPU speed-ups, ``fit``, test
metrics, plots, ``model/`` as a Hugging Face folder; so ``tuneforge.load``, predict, eval and export work on
the result. The caller writes ``config.yaml`` and ``metrics.json`` (its own comparison goes in them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tuneforge.config import TrainConfig
from tuneforge.data.splits import subsample_stratified
from tuneforge.evaluation.inference import predict_proba
from tuneforge.evaluation.metrics import classification_metrics, mean_loss
from tuneforge.evaluation.plots import plot_confusion, plot_loss
from tuneforge.models.attention import restore_attention, use_training_attention
from tuneforge.models.first_token import use_first_token_shortcut
from tuneforge.recipes.runfolder import flatten, write_json
from tuneforge.training.batching import Encoded, encode
from tuneforge.training.fast_dropout import use_fast_dropout
from tuneforge.training.loop import LossFn, fit


@dataclass
class Setting:
    """Where and how models run, and the encoded splits (shared by every model measured in a recipe)."""

    device: torch.device
    precision: str
    pad_id: int
    padding_side: str
    enc: dict[str, Encoded]

    def inference_kwargs(self, batch_size: int = 64) -> dict[str, Any]:
        return {"batch_size": batch_size, "precision": self.precision, "device": self.device, "pad_id": self.pad_id,
                "padding_side": self.padding_side}


def make_setting(splits, tokenizer, cfg: TrainConfig, device: torch.device, precision: str) -> Setting:
    enc = {name: encode(getattr(splits, name), tokenizer, splits.labels, cfg.data.max_length)
           for name in ("train", "validation", "test")}
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return Setting(device, precision, pad_id, getattr(tokenizer, "padding_side", "right"), enc)


def finetune(model: nn.Module, tokenizer, cfg: TrainConfig, splits, setting: Setting, run_dir: Path, *,
             epochs_done: bool = False, progress: bool = True, loss_fn: LossFn | None = None,
             train_data: Encoded | None = None, before_save=None) -> dict[str, Any]:
    """Fit ``model`` (all weights train) unless ``epochs_done``; write log, plots and ``model/`` into ``run_dir``
    and return the run's metrics (train.*, validation.*, test.*). ``train_data`` replaces the encoded training
    split (distillation adds unlabelled texts); ``before_save(model)`` runs before the final evaluation."""
    loop = cfg.train
    for param in model.parameters():
        param.requires_grad_(True)
    if loop.fast_dropout:
        use_training_attention(model)
        use_fast_dropout(model)
    if loop.first_token_shortcut:
        use_first_token_shortcut(model)
    kwargs = setting.inference_kwargs(max(64, loop.batch_size))
    val = setting.enc["validation"]
    if cfg.data.max_eval_samples and cfg.data.max_eval_samples < len(splits.validation):
        sample = subsample_stratified(splits.validation, cfg.data.max_eval_samples, seed=loop.seed)
        val = encode(sample, tokenizer, splits.labels, cfg.data.max_length)

    def evaluate() -> dict[str, float]:
        probs = predict_proba(model, val, **kwargs)
        m = classification_metrics(val.labels, probs.argmax(-1).tolist(), splits.labels)
        return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "loss": mean_loss(probs, val.labels)}

    metrics: dict[str, Any] = {}
    if not epochs_done:
        torch.manual_seed(loop.seed)
        state = fit(model, train_data or setting.enc["train"], loop, run_dir=run_dir, precision=setting.precision,
                    device=setting.device, pad_id=setting.pad_id, padding_side=setting.padding_side,
                    evaluate=evaluate, progress=progress, loss_fn=loss_fn).state
        best = [e for e in state.evals if e["step"] == state.best_step] if loop.early_stopping_patience else []
        final_val = best[-1] if best else (state.evals[-1] if state.evals else {})
        metrics |= {"train": {"seconds": state.seconds, "samples": state.samples, "steps": state.step,
                              "samples_per_second": state.samples / max(state.seconds, 1e-9),
                              "precision": setting.precision},
                    "validation": {k: v for k, v in final_val.items() if k not in ("step", "epoch")}}
        log = [r for r in _read_log(run_dir / "log.jsonl") if r.get("type") == "train"]
        plot_loss(log, state.evals, run_dir / "loss.png", loop.metric)
    if before_save is not None:
        before_save(model)
    model.eval()
    probs = predict_proba(model, setting.enc["test"], **kwargs)
    test = classification_metrics(setting.enc["test"].labels, probs.argmax(-1).tolist(), splits.labels)
    test["loss"] = mean_loss(probs, setting.enc["test"].labels)
    metrics["test"] = test
    plot_confusion(test["confusion_matrix"], splits.labels, run_dir / "confusion_matrix.png",
                   f"{cfg.name}: test accuracy {test['accuracy']:.3f}")
    restore_attention(model)
    model_dir = run_dir / "model"
    model_dir.mkdir()
    model.save_pretrained(model_dir, safe_serialization=True)
    tokenizer.save_pretrained(model_dir)
    write_json(model_dir / "labels.json", splits.labels)
    return flatten("", metrics)


def _read_log(path: Path) -> list[dict]:
    import json

    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")
