"""Experiment tracking: TensorBoard and MLflow, switched on by the ``tracking:`` config section."""

from tuneforge.tracking.config import TrackingConfig
from tuneforge.tracking.trackers import Tracker, open_tracker

__all__ = ["Tracker", "TrackingConfig", "open_tracker"]
