"""Hyperparameter search with Optuna: ``tuneforge tune CONFIG --trials N`` (docs/TRAINING.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuneforge.tune.config import Range, SearchConfig


def tune(config: Any, overrides: list[str] | None = None, *, trials: int | None = None,
         output_dir: str | Path | None = None, resume: str | Path | None = None, progress: bool = True,
         pruner: Any = None) -> Any:
    """Run (or continue) a study; see :func:`tuneforge.tune.study.tune`. Optuna is imported only here."""
    from tuneforge.tune.study import tune as run_study

    return run_study(config, overrides, trials=trials, output_dir=output_dir, resume=resume, progress=progress,
                     pruner=pruner)


__all__ = ["Range", "SearchConfig", "tune"]
