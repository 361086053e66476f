"""tracking: a tiny run sends its log lines, evaluations, final metrics, config and artifacts to TensorBoard
and MLflow; both are read back (TensorBoard's EventAccumulator, MLflow's client on the local store)."""

from __future__ import annotations

import json

import pytest

import tuneforge
from tuneforge.errors import TuneforgeError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tracked_run(make_tiny_config, tmp_path_factory):
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    cfg = make_tiny_config(tmp_path_factory.mktemp("tracked") / "run")
    cfg["tracking"] = {"tensorboard": True, "mlflow": True}
    return tuneforge.train(cfg, progress=False)


def read_log(run_dir):
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def test_tensorboard_holds_every_log_line_and_the_final_metrics(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tracked_run.dir / "tensorboard"), size_guidance={"scalars": 0, "images": 0,
                                                                                   "tensors": 0}).Reload()
    log = read_log(tracked_run.dir)
    train_lines = [r for r in log if r["type"] == "train"]
    evals = [r for r in log if r["type"] == "eval"]
    loss = events.Scalars("train/loss")
    assert [e.step for e in loss] == [r["step"] for r in train_lines]
    assert [e.value for e in loss] == pytest.approx([r["loss"] for r in train_lines], rel=1e-6)
    assert [e.value for e in events.Scalars("validation/macro_f1")] == pytest.approx([r["macro_f1"] for r in evals])
    final = events.Scalars("final/test.accuracy")
    assert final[-1].value == pytest.approx(tracked_run.metrics["test.accuracy"])
    tags = events.Tags()
    assert {"loss", "confusion_matrix"} <= set(tags["images"])
    assert any(tag.startswith("config") for tag in tags["tensors"])  # text summaries are stored as tensors


def test_mlflow_holds_params_metrics_and_artifacts(tracked_run):
    from mlflow.tracking import MlflowClient

    info = json.loads((tracked_run.dir / "run.json").read_text())
    client = MlflowClient(f"sqlite:///{tracked_run.dir.resolve() / 'mlflow' / 'mlflow.db'}")
    run = client.get_run(info["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["train.learning_rate"] == "0.005"
    assert run.data.params["method.name"] == "full"
    assert run.data.metrics["final/test.macro_f1"] == pytest.approx(tracked_run.metrics["test.macro_f1"])
    history = client.get_metric_history(run.info.run_id, "train/loss")
    train_lines = [r for r in read_log(tracked_run.dir) if r["type"] == "train"]
    assert sorted((m.step, round(m.value, 6)) for m in history) == \
        [(r["step"], round(r["loss"], 6)) for r in train_lines]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "metrics.json", "loss.png", "confusion_matrix.png", "log.jsonl"} <= artifacts


def test_a_bad_mlflow_uri_fails_the_run_with_the_setting_named(make_tiny_config, tmp_path):
    pytest.importorskip("mlflow")
    cfg = make_tiny_config(tmp_path / "run")
    cfg["tracking"] = {"mlflow": True, "mlflow_uri": "nosuchscheme://x"}
    with pytest.raises(TuneforgeError, match='tracking.mlflow_uri = "nosuchscheme://x"'):
        tuneforge.train(cfg, progress=False)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "failed"


def test_tracking_keys_are_checked(make_tiny_config, tmp_path):
    cfg = make_tiny_config(tmp_path / "run")
    cfg["tracking"] = {"tensorbord": True}
    with pytest.raises(TuneforgeError, match='Did you mean "tensorboard"'):
        tuneforge.train(cfg, progress=False)


@pytest.mark.parametrize(("tracking", "said"), [
    ({"mlflow_uri": "http://host:5000"}, r"tracking.mlflow_uri is set, but tracking.mlflow is off .*nothing would be "
                                         r"sent to MLflow: add tracking.mlflow=true"),
    ({"tensorboard_dir": "tb"}, r"tracking.tensorboard_dir is set, but tracking.tensorboard is off"),
])
def test_a_backend_setting_without_the_backend_switched_on_is_an_error(tracking, said):
    # tracking.mlflow_uri=... alone trained a run that logged nothing to MLflow, silently
    from tuneforge.config import TrainConfig, load_config

    data = {"data": {"dataset": "airline-sentiment"}, "tracking": tracking}
    with pytest.raises(TuneforgeError, match=said):
        load_config(TrainConfig, data=data)
    switched_off = load_config(TrainConfig, data={**data, "tracking": {**tracking, "mlflow": False,
                                                                       "tensorboard": False}})
    assert not switched_off.tracking.enabled  # written off on purpose: kept off, no error
