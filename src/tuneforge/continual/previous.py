"""Run A, the run a continual config continues from: checked, its data re-read, its weights loaded.

Every check names ``continual.previous`` (the field) and says what to do, and runs before B's run folder
exists, so a wrong folder costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tuneforge.data.records import DatasetSplits
from tuneforge.errors import TuneforgeError


@dataclass
class PreviousRun:
    """A finished text-classification run: its folder, config (TrainConfig), labels and test accuracy."""

    dir: Path
    config: Any
    labels: list[str]
    metrics: dict[str, Any]

    def splits(self) -> DatasetSplits:
        """A's own data, read again from A's config (built-in datasets are fixed; files must still exist)."""
        from tuneforge.tasks import get_task

        data = self.config.data
        missing = [f"data.{name}: {path}" for name in ("train", "validation", "test")
                   if (path := getattr(data, name)) is not None and not Path(path).is_file()]
        if missing:
            raise TuneforgeError(f"continual.previous = {self.dir}: the files run A was trained on are gone "
                                 f"({'; '.join(missing)}, from its config.yaml), and rehearsal, EWC and the "
                                 "before/after test of A all read them. Put them back at those paths, or turn "
                                 "those off: continual.rehearsal=null continual.ewc=null "
                                 "continual.evaluate_previous=false.")
        return get_task(self.config.task).part("load_splits")(data, self.config.train.seed)


def load_previous(folder: Path) -> PreviousRun:
    """Check that ``folder`` is a finished text-classification run and read its config, labels and metrics."""
    from tuneforge.config import TrainConfig, load_config
    from tuneforge.recipes.runfolder import read_json

    folder = Path(folder).expanduser()
    where = f"continual.previous = {folder}"
    if not folder.is_dir():
        raise TuneforgeError(f"{where}: no such folder ({folder.resolve()}). Give the run folder of task A that "
                             "`tuneforge train` printed (runs/<name>-<timestamp>).")
    if not (folder / "config.yaml").is_file():
        raise TuneforgeError(f"{where}: not a tuneforge run folder (no config.yaml). Give the folder that "
                             "`tuneforge train` wrote for task A.")
    from tuneforge.run import _recipe, folder_of_runs

    if (collection := folder_of_runs(folder)) is not None:
        raise TuneforgeError(f"{where}: {collection}")
    if _recipe(folder) == "zeroshot":
        raise TuneforgeError(f"{where}: run A is a zero-shot run (tuneforge zeroshot): nothing was trained, so there "
                             "are no weights to continue from. Give a run of `tuneforge train`, or train B without "
                             "continual:.")
    if _recipe(folder) == "pretrain":
        raise TuneforgeError(f"{where}: run A is a pretraining run (tuneforge pretrain), a language model without a "
                             f"classifier. Start B from it as its model instead: model={folder / 'model'}, without "
                             "continual:.")
    if not (folder / "model").is_dir():
        status = read_json(folder / "run.json").get("status", "unknown") if (folder / "run.json").is_file() \
            else "unknown"
        raise TuneforgeError(f"{where}: run A did not finish (status: {status}; no model/ folder), so there are no "
                             f"weights to continue from. Finish it first: tuneforge train --resume {folder}")
    config = load_config(TrainConfig, path=folder / "config.yaml")
    if config.task != "text-classification" or config.prompt is not None or config.contrastive is not None:
        kind = "a PET run (prompt:)" if config.prompt is not None else "a contrastive run (contrastive:)" \
            if config.contrastive is not None else f"a {config.task} run"
        raise TuneforgeError(f"{where}: run A is {kind}; continual training continues plain text-classification "
                             "runs (one classifier head). Continue from a run trained without prompt:/contrastive:.")
    metrics_path = folder / "metrics.json"
    metrics = read_json(metrics_path) if metrics_path.is_file() else {}
    return PreviousRun(dir=folder.resolve(), config=config, labels=list(read_json(folder / "model" / "labels.json")),
                       metrics=metrics)


def check_compatible(previous: PreviousRun, cfg, labels: list[str]) -> list[str]:
    """The same backbone as A, and B's labels among A's. Returns the label list B trains with: A's, in A's order
    (the head's rows are A's)."""
    from tuneforge.models.backbones import resolve_model

    where = f"continual.previous = {previous.dir}"
    if resolve_model(previous.config.model) != resolve_model(cfg.model):
        raise TuneforgeError(f"{where}: run A was trained on model: {previous.config.model}, this config has model: "
                             f"{cfg.model}. B continues A's weights, so it needs A's backbone: set "
                             f"model={previous.config.model}.")
    extra = sorted(set(labels) - set(previous.labels))
    if extra:
        raise TuneforgeError(f"{where}: task B's labels {extra} are not among run A's labels {previous.labels}. "
                             "Continual training keeps A's one head (domain-incremental: the same labels, new "
                             "data). A task with other labels goes the adapter-per-task route: train it as its own "
                             "run with a LoRA method on the same model (no continual:), and load both with "
                             "tuneforge.load([A, B]) (docs/CONTINUAL.md).")
    return list(previous.labels)


def merged_weights(previous: PreviousRun) -> dict[str, torch.Tensor]:
    """A's trained model as plain transformers weights (its method folded in), the state B starts from."""
    from tuneforge.methods import build_method
    from tuneforge.models.backbones import load_backbone

    method = build_method(previous.config.method)
    if not getattr(method, "merges", False):
        raise TuneforgeError(f"continual.previous = {previous.dir}: run A used method {previous.config.method.name}, "
                             "which adds modules or virtual tokens that do not fold into the backbone's weights, so "
                             "B cannot start from them. Continue from a run of full, freeze, bitfit, lora, adalora "
                             "or ia3.")
    cfg = previous.config
    model: nn.Module = method.load(previous.dir / "model", lambda: load_backbone(cfg.model, previous.labels, cfg.task))
    return {k: v.detach().float() for k, v in method.merge(model).state_dict().items()}


def load_weights(model: nn.Module, weights: dict[str, torch.Tensor], previous_dir: Path) -> None:
    """Copy A's weights into B's freshly built classifier (same class, same labels): every key must match."""
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    shapes = sorted(k for k in set(own) & set(weights) if own[k].shape != weights[k].shape)
    if missing or unexpected or shapes:
        detail = "; ".join(f"{what}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}" for what, keys in
                           (("missing in A", missing), ("only in A", unexpected), ("other shapes", shapes)) if keys)
        raise TuneforgeError(f"continual.previous = {previous_dir}: run A's weights do not fit this backbone "
                             f"({detail}); was A pruned or trained on another model? Continue from a run of the "
                             "same model, unpruned.")
    with torch.no_grad():
        for name, tensor in own.items():
            tensor.copy_(weights[name].to(tensor.dtype))
