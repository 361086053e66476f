"""The ``tracking:`` config section: where a training run's metrics, config and artifacts are also sent."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from tuneforge.config.base import StrictModel


class TrackingConfig(StrictModel):
    """Send log.jsonl lines, evaluations, final metrics, the resolved config and the run's plots and files to
    TensorBoard and/or MLflow, besides the run folder (which always has them)."""

    tensorboard: bool = Field(False, description="Write TensorBoard event files (`tensorboard --logdir RUN_DIR`).")
    tensorboard_dir: Path | None = Field(None, description="Folder for the event files; default RUN_DIR/tensorboard.")
    mlflow: bool = Field(False, description="Log to MLflow: params (the config), metrics per step, artifacts.")
    mlflow_uri: str | None = Field(
        None, description="MLflow tracking URI: a server (http://host:5000), a database (sqlite:///path.db) or a "
                          "file store (file:///path). Default: a SQLite store in RUN_DIR/mlflow (`mlflow ui "
                          "--backend-store-uri sqlite:///RUN_DIR/mlflow/mlflow.db`).")
    mlflow_experiment: str | None = Field(None, description="MLflow experiment; default: the run's name.")

    @property
    def enabled(self) -> bool:
        return self.tensorboard or self.mlflow
