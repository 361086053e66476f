"""Send a run's records to TensorBoard and MLflow while it trains, and its results when it ends.

The training recipe makes one :class:`Tracker` per run and hands ``tracker.log`` to the loop as its
``on_log`` hook: every log.jsonl record (a training window or an evaluation) also goes to each backend.
``finish`` sends the final metrics, the resolved config and the run's files (metrics.json, loss.png,
confusion_matrix.png, log.jsonl). With tracking off the tracker does nothing but call the caller's own hook.
Both libraries are imported only when switched on, with a message naming the package if it is missing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuneforge.errors import TuneforgeError

OnLog = Callable[[dict], None]
ARTIFACTS = ("config.yaml", "labels.json", "metrics.json", "log.jsonl", "loss.png", "confusion_matrix.png")
# log.jsonl record type -> metric prefix
PREFIX = {"train": "train", "eval": "validation"}


def scalars(record: dict, prefix: str, skip: tuple[str, ...] = ("type", "step", "epoch")) -> dict[str, float]:
    """The numeric fields of a record as ``{prefix/name: value}`` (bools and strings are left out)."""
    return {f"{prefix}/{k}": float(v) for k, v in record.items()
            if k not in skip and isinstance(v, (int, float)) and not isinstance(v, bool)}


def flat_params(data: dict, prefix: str = "") -> dict[str, str]:
    """A nested config as ``{"train.learning_rate": "0.002"}`` (MLflow params are strings)."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            out.update(flat_params(value, name))
        else:
            out[name] = str(value)[:500]  # MLflow's limit on a param value
    return out


class _TensorBoard:
    def __init__(self, folder: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise TuneforgeError("tracking.tensorboard is on, but the tensorboard package is not installed. "
                                 "Install it (pip install tensorboard) or set tracking.tensorboard: false.") from None
        self.folder = folder
        self.writer = SummaryWriter(log_dir=str(folder))

    def start(self, config_yaml: str, params: dict[str, str]) -> None:
        self.writer.add_text("config", "```yaml\n" + config_yaml + "\n```", 0)

    def log(self, values: dict[str, float], step: int) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)

    def finish(self, run_dir: Path, final: dict[str, float], step: int, status: str) -> None:
        self.log(final, step)
        for name in ("loss.png", "confusion_matrix.png"):
            if (run_dir / name).exists():
                import matplotlib.image

                image = matplotlib.image.imread(run_dir / name)[..., :3]  # (H, W, 3) floats in [0, 1]
                self.writer.add_image(name.removesuffix(".png"), image, step, dataformats="HWC")
        if (run_dir / "metrics.json").exists():
            text = (run_dir / "metrics.json").read_text(encoding="utf-8")
            self.writer.add_text("metrics.json", "```json\n" + text + "\n```", step)
        self.writer.add_text("status", status, step)
        self.writer.close()


class _MLflow:
    def __init__(self, uri: str | None, run_dir: Path, experiment: str, run_name: str, run_id: str | None) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise TuneforgeError("tracking.mlflow is on, but the mlflow package is not installed. Install it "
                                 "(pip install mlflow-skinny, or mlflow for the UI) or set tracking.mlflow: "
                                 "false.") from None
        folder = run_dir.resolve() / "mlflow"
        if uri is None:
            # MLflow 3 keeps its file store in maintenance mode and refuses it by default: a SQLite file in
            # the run folder is the local store that needs no server and no opt-in.
            folder.mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{folder / 'mlflow.db'}"
        elif uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # the user asked for a file store
        self.uri = uri
        try:
            self.client = MlflowClient(tracking_uri=uri)
            if run_id is not None:  # a resumed run continues its MLflow run
                self.run_id = self.client.get_run(run_id).info.run_id
            else:
                found = self.client.get_experiment_by_name(experiment)
                if found is not None:
                    experiment_id = found.experiment_id
                else:
                    # a new experiment in a SQLite store keeps its artifacts next to the database, not in
                    # the folder of whichever run happened to create it (tuneforge tune shares one store)
                    artifacts = (Path(uri.removeprefix("sqlite:///")).resolve().parent / "artifacts").as_uri() \
                        if uri.startswith("sqlite:///") else None
                    experiment_id = self.client.create_experiment(experiment, artifact_location=artifacts)
                self.run_id = self.client.create_run(experiment_id, run_name=run_name,
                                                     tags={"tuneforge.run_dir": str(run_dir.resolve())}
                                                     ).info.run_id
        except Exception as exc:  # an unreachable server, a bad URI: say which setting to fix
            raise TuneforgeError(f'tracking.mlflow_uri = "{uri}": MLflow could not start a run there '
                                 f"({type(exc).__name__}: {str(exc)[:300]}). Check the URI or the server, or set "
                                 "tracking.mlflow: false.") from None

    def start(self, config_yaml: str, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        existing = self.client.get_run(self.run_id).data.params
        new = [Param(k, v) for k, v in params.items() if k not in existing]
        for i in range(0, len(new), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=new[i:i + 100])
        self.client.log_text(self.run_id, config_yaml, "config.yaml")

    def log(self, values: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in values.items()])

    def finish(self, run_dir: Path, final: dict[str, float], step: int, status: str) -> None:
        self.log(final, step)
        for name in ARTIFACTS:
            if (run_dir / name).exists():
                self.client.log_artifact(self.run_id, str(run_dir / name))
        self.client.set_terminated(self.run_id, "FINISHED" if status == "complete" else
                                   "KILLED" if status in ("interrupted", "pruned") else "FAILED")


class Tracker:
    """Fans each log record out to the backends that are switched on, and to ``on_log``."""

    def __init__(self, backends: list[Any], on_log: OnLog | None = None) -> None:
        self.backends = backends
        self.on_log = on_log
        self.step = 0
        self.closed = False

    @property
    def mlflow_run_id(self) -> str | None:
        return next((b.run_id for b in self.backends if isinstance(b, _MLflow)), None)

    def log(self, record: dict) -> None:
        self.step = max(self.step, int(record.get("step", 0)))
        prefix = PREFIX.get(record.get("type", ""), str(record.get("type", "log")))
        values = scalars(record, prefix)
        for backend in self.backends:
            backend.log(values, int(record.get("step", 0)))
        if self.on_log is not None:
            self.on_log(record)  # last: it may stop the run (tuneforge tune prunes this way)

    def finish(self, run_dir: Path, metrics: dict[str, Any], status: str = "complete") -> None:
        """Final metrics (numbers only, as ``final/<name>``), files and the status; safe to call twice."""
        if self.closed:
            return
        self.closed = True
        final = {f"final/{k}": float(v) for k, v in metrics.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool)}
        for backend in self.backends:
            backend.finish(run_dir, final, self.step, status)


def open_tracker(cfg: Any, run_dir: Path, on_log: OnLog | None = None, *, mlflow_run_id: str | None = None
                 ) -> Tracker:
    """The tracker for a run: ``cfg`` is the resolved TrainConfig (its ``tracking`` section, its YAML as the
    config to log). ``mlflow_run_id`` continues that MLflow run (``tuneforge train --resume``)."""
    from tuneforge.config import dump_config

    tracking = cfg.tracking
    backends: list[Any] = []
    if tracking.tensorboard:
        backends.append(_TensorBoard(Path(tracking.tensorboard_dir or run_dir / "tensorboard")))
    if tracking.mlflow:
        backends.append(_MLflow(tracking.mlflow_uri, run_dir, tracking.mlflow_experiment or cfg.name, run_dir.name,
                                mlflow_run_id))
    if backends:
        config_yaml = dump_config(cfg)
        params = flat_params(json.loads(cfg.model_dump_json()))
        for backend in backends:
            backend.start(config_yaml, params)
    return Tracker(backends, on_log)
