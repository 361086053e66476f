"""The ``tracking:`` config section: where a training run's metrics, config and artifacts are also sent."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

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

    @model_validator(mode="after")
    def _switched_on(self) -> TrackingConfig:
        """`tracking.mlflow_uri=http://host:5000` alone would log nothing (mlflow is off by default): a setting of a
        backend that was not switched on is an error; one switched off explicitly (`mlflow: false`) keeps it off."""
        problems = []
        for backend, shown, keys in (("tensorboard", "TensorBoard", ("tensorboard_dir",)),
                                     ("mlflow", "MLflow", ("mlflow_uri", "mlflow_experiment"))):
            given = [f"tracking.{key}" for key in keys if getattr(self, key) is not None]
            if given and not getattr(self, backend) and backend not in self.model_fields_set:
                verb = "is" if len(given) == 1 else "are"
                problems.append(f"{' and '.join(given)} {verb} set, but tracking.{backend} is off (its default), so "
                                f"nothing would be sent to {shown}: add "
                                f"tracking.{backend}=true (in the config: tracking: {{{backend}: true}}), or write "
                                f"tracking.{backend}: false to keep it off")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def enabled(self) -> bool:
        return self.tensorboard or self.mlflow
