"""The ``search:`` config section: the ranges ``tuneforge tune`` searches, by config field path."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from tuneforge.config.base import StrictModel
from tuneforge.errors import closest


class Range(StrictModel):
    """A numeric range: integers when ``low`` and ``high`` are both integers, else floats."""

    low: int | float = Field(description="Smallest value.")
    high: int | float = Field(description="Largest value.")
    log: bool = Field(False, description="Sample on a log scale (learning rates, weight decay).")
    step: int | float | None = Field(None, gt=0, description="Only multiples of step above low (not with log).")

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0 (got {self.low})")
        if self.log and self.step is not None:
            raise ValueError("give log or step, not both")
        return self

    @property
    def is_int(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int) and \
            (self.step is None or isinstance(self.step, int))


class SearchConfig(StrictModel):
    """Hyperparameter search with Optuna: ``tuneforge tune CONFIG`` (docs/TRAINING.md). ``tuneforge train``
    ignores this section.

    Field paths go under ``space:`` or, as a shorthand, straight into the section: a key with a dot in it is a
    field path, so ``search: {train.learning_rate: {low: 1.0e-5, high: 1.0e-3, log: true}, method.r: [4, 8]}``
    is ``search: {space: {...}}``."""

    space: dict[str, Range | list[Any]] = Field(
        min_length=1, description="Config field path -> a range {low, high, log, step} or a list of choices, "
                                  "e.g. {train.learning_rate: {low: 1.0e-5, high: 1.0e-3, log: true}, "
                                  "method.r: [4, 8, 16]}. The paths may also sit directly in search:.")
    trials: int = Field(20, ge=1, description="Trials in the study (a resumed study runs up to this many in all).")
    sampler: Literal["tpe", "random"] = Field("tpe", description="tpe (Bayesian, Optuna's default) or random.")
    pruner: Literal["median", "none"] = Field(
        "median", description="median: stop a trial whose validation metric at an evaluation is worse than the "
                              "median of earlier trials at the same evaluation (Optuna's MedianPruner); none: never "
                              "prune.")
    startup_trials: int = Field(3, ge=0, description="Trials that run to the end before any pruning.")
    warmup_evals: int = Field(0, ge=0, description="Evaluations of each trial that are never pruned.")

    @model_validator(mode="before")
    @classmethod
    def _paths_into_space(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for key in data:
            if isinstance(key, str) and "." not in key and key not in cls.model_fields \
                    and closest(key, cls.model_fields) is None:
                raise ValueError(f'"{key}" is not a search setting ({", ".join(cls.model_fields)}); a field to '
                                 f"search is written as its path, e.g. train.{key} or method.{key}")
        paths = {k: v for k, v in data.items() if isinstance(k, str) and "." in k}
        if not paths:
            return data
        space = data.get("space") or {}
        if not isinstance(space, dict):
            return data  # pydantic reports the wrong type of space
        twice = sorted(set(paths) & set(space))
        if twice:
            raise ValueError(f"{', '.join(twice)} given both in search: and in search.space: keep one")
        rest = {k: v for k, v in data.items() if k not in paths}
        return {**rest, "space": {**space, **paths}}

    @model_validator(mode="after")
    def _choices(self) -> SearchConfig:
        for key, spec in self.space.items():
            if isinstance(spec, list) and not spec:
                raise ValueError(f'search.space["{key}"]: the list of choices is empty')
        return self
