"""The ``continual:`` config section: train task B after run A without forgetting A (docs/CONTINUAL.md)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from tuneforge.config.base import StrictModel


class RehearsalConfig(StrictModel):
    """Replay: a seeded sample of run A's training examples is mixed into B's training data."""

    samples: int = Field(200, ge=1, description="How many of run A's training examples (drawn with train.seed "
                                                "from A's training split only) join B's training data.")


class EWCConfig(StrictModel):
    """Elastic weight consolidation (Kirkpatrick et al. 2017): lambda/2 * sum_i F_i (theta_i - theta*_i)^2."""

    strength: float = Field(1e6, gt=0, description="lambda in lambda/2 * sum_i F_i (theta_i - theta*_i)^2, where "
                                                   "F is the diagonal Fisher of run A's data and theta* A's "
                                                   "weights. The Fisher of a trained model is small (mean 2.7e-6 "
                                                   "on MiniLM after airline tweets), so useful values are large; "
                                                   "docs/CONTINUAL.md measures 1e6.")
    fisher_samples: int = Field(200, ge=1, description="Run A's training examples (seeded sample) whose squared "
                                                       "log-likelihood gradients are averaged into F.")


class ContinualConfig(StrictModel):
    """Continue from a finished run A on this config's data (task B), with remedies against forgetting A.

    One head over A's labels (domain-incremental): B's labels must be A's or a subset. Tasks with other labels
    take the adapter-per-task route instead: one LoRA run per task on the same backbone, loaded together with
    ``tuneforge.load([A, B])``.
    """

    previous: Path = Field(description="Run folder of task A (what `tuneforge train` printed). B starts from its "
                                       "weights; its metrics.json reports A's test accuracy before and after.")
    rehearsal: RehearsalConfig | None = Field(None, description="Mix a sample of A's training examples into B's "
                                                                "training data; null: off.")
    ewc: EWCConfig | None = Field(None, description="Add the EWC penalty that holds the weights A needs; null: off.")
    evaluate_previous: bool = Field(True, description="After training, evaluate the model on A's test split and "
                                                      "write continual.previous_test.* to metrics.json.")
