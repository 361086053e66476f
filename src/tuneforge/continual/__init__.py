"""Continual learning: train task B after run A without forgetting A (docs/CONTINUAL.md).

``continual: {previous: RUN_A}`` in a training config starts B from A's weights (one head over A's labels);
``rehearsal:`` mixes a seeded sample of A's training examples into B's, ``ewc:`` adds Kirkpatrick et al.'s
penalty (:mod:`tuneforge.continual.ewc`). The adapter-per-task route needs no section: one LoRA run per task
on the same backbone, loaded together with ``tuneforge.load([A, B])``.
"""

from tuneforge.continual.config import ContinualConfig, EWCConfig, RehearsalConfig
from tuneforge.continual.ewc import EWC, ewc_penalty, fisher_diagonal
from tuneforge.continual.rehearsal import rehearsal_sample

__all__ = ["EWC", "ContinualConfig", "EWCConfig", "RehearsalConfig", "ewc_penalty", "fisher_diagonal",
           "rehearsal_sample"]
