"""Text classification's data: the classification readers, with a clear error for a dataset of another task."""

from __future__ import annotations

from tuneforge.errors import TuneforgeError


def check_builtin_task(dataset: str | None, task: str) -> None:
    """A built-in dataset made for another task is a config mistake: say which task it needs."""
    if dataset is None:
        return
    from tuneforge.data.builtin.registry import REGISTRY

    found = REGISTRY.get(dataset)
    if found is not None and found.task != task:
        raise TuneforgeError(f'data.dataset "{dataset}" is a {found.task} dataset, but the config says task: {task}. '
                             f"Set task: {found.task} (or pick a {task} dataset: `tuneforge datasets list`).")


def check_config(cfg) -> None:
    """Every option of the schema applies to text classification, but for one of the prompt: section."""
    if cfg.prompt is not None and cfg.prompt.calibrate:
        # PET trains and predicts with the uncalibrated label scores; prompt.json would say calibrate: true.
        raise TuneforgeError("prompt.calibrate: true: contextual calibration is for `tuneforge zeroshot`; prompt-based "
                             "training (PET) learns from and predicts with the uncalibrated label scores, so the run "
                             "would claim a calibration it never applies. Set prompt.calibrate=false to train, or "
                             "score without training: tuneforge zeroshot CONFIG.")


def load_splits(cfg, seed: int):
    from tuneforge.data.source import load_splits as load_classification_splits

    check_builtin_task(cfg.dataset, "text-classification")
    return load_classification_splits(cfg, seed)
