"""Metrics, batched inference and plots."""

from tuneforge.evaluation.metrics import classification_metrics
from tuneforge.evaluation.inference import predict_proba

__all__ = ["classification_metrics", "predict_proba"]
