"""Ensembles (recipes/ensemble.py, ``tuneforge ensemble``): the mean of the members' probabilities, the
members' own metrics, label alignment and refusals, the report folder, the command line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

import tuneforge
from tuneforge.data import Example, read_examples
from tuneforge.errors import TuneforgeError
from tuneforge.evaluation.metrics import classification_metrics
from tuneforge.recipes.ensemble import ensemble

pytestmark = pytest.mark.usefixtures("one_thread")
LABELS = ["negative", "neutral", "positive"]


@pytest.fixture(scope="module")
def runs(make_tiny_config, tmp_path_factory) -> list[Path]:
    """Two tiny runs of the same task: full fine-tuning (seed 0) and LoRA (seed 1)."""
    folder = tmp_path_factory.mktemp("ensemble")
    made = []
    for method, seed in [("full", 0), ("lora", 1)]:
        cfg = make_tiny_config(folder / f"{method}-{seed}")
        cfg["method"] = {"name": method}
        cfg["train"].update(epochs=3, seed=seed, learning_rate=2e-3 if method == "full" else 1e-2)
        made.append(tuneforge.train(cfg, progress=False).dir)
    return made


def copy_run(run: Path, target: Path, labels: list[str] | None = None, data: dict | None = None) -> Path:
    """A copy of a run folder, with other label names in model/labels.json or another data: section."""
    shutil.copytree(run, target)
    if labels is not None:
        (target / "model" / "labels.json").write_text(json.dumps(labels), encoding="utf-8")
    if data is not None:
        cfg = yaml.safe_load((target / "config.yaml").read_text(encoding="utf-8"))
        cfg["data"] = data
        (target / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return target


def test_ensemble_averages_the_members_probabilities(runs, tiny_data):
    examples = read_examples(tiny_data["validation"])
    result = tuneforge.ensemble(runs, tiny_data["validation"], progress=False)
    probs = [tuneforge.load(r).predict_proba(examples) for r in runs]
    assert not np.allclose(probs[0], probs[1])  # two different models, or the test proves nothing
    np.testing.assert_allclose(result.probabilities, (probs[0] + probs[1]) / 2, atol=1e-6)
    y = [LABELS.index(e.label) for e in examples]
    expected = classification_metrics(y, ((probs[0] + probs[1]) / 2).argmax(-1).tolist(), LABELS)
    assert result.metrics["accuracy"] == expected["accuracy"]
    assert result.metrics["confusion_matrix"] == expected["confusion_matrix"]
    for member, run in zip(result.members, runs):  # each member's metrics are `tuneforge eval`'s
        own = tuneforge.load(run).evaluate(examples)
        assert member["accuracy"] == own["accuracy"] and member["macro_f1"] == own["macro_f1"]
        assert member["loss"] == pytest.approx(own["loss"], abs=1e-5)
    assert [m["method"] for m in result.members] == ["full", "lora"]
    assert [m["seed"] for m in result.members] == [0, 1]
    mean_member = np.mean([m["accuracy"] for m in result.members])
    assert result.gain["accuracy_vs_mean_member"] == pytest.approx(result.metrics["accuracy"] - mean_member)
    best_member = max(m["accuracy"] for m in result.members)
    assert result.gain["accuracy_vs_best_member"] == pytest.approx(result.metrics["accuracy"] - best_member)
    assert result.dir is None  # no output_dir: nothing written


def test_default_data_is_the_common_test_split(runs):
    result = ensemble(runs, progress=False)
    assert result.metrics["count"] == 30
    for member, run in zip(result.members, runs):  # the same test set the runs reported on
        metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
        assert member["accuracy"] == metrics["test.accuracy"]
    assert "test" in result.data


def test_members_with_another_label_order_are_aligned_by_name(runs, tiny_data, tmp_path):
    examples = read_examples(tiny_data["test"])
    # The same model with its classes written in another order: column i of its output is now labels[i].
    order = ["positive", "negative", "neutral"]
    shuffled = copy_run(runs[1], tmp_path / "shuffled", labels=order)
    result = ensemble([runs[0], shuffled], examples, progress=False)
    assert result.labels == LABELS  # the first run's order
    a = tuneforge.load(runs[0]).predict_proba(examples)
    b = tuneforge.load(shuffled).predict_proba(examples)  # columns in `order`
    b_aligned = b[:, [order.index(name) for name in LABELS]]
    np.testing.assert_allclose(result.probabilities, (a + b_aligned) / 2, atol=1e-6)
    assert not np.allclose(result.probabilities, (a + b) / 2, atol=1e-3)


def test_an_onnx_export_can_be_a_member(runs, tiny_data, tmp_path):
    pytest.importorskip("onnxruntime")
    exported = tuneforge.load(runs[0], precision="fp32").export(tmp_path / "onnx", format="onnx", parity_samples=8)
    examples = read_examples(tiny_data["test"])
    result = ensemble([exported, runs[1]], examples, progress=False)
    a, b = (tuneforge.load(r).predict_proba(examples) for r in runs)
    np.testing.assert_allclose(result.probabilities, (a + b) / 2, atol=1e-4)


class FakeRun:
    def __init__(self, labels: list[str], probs: np.ndarray) -> None:
        self.labels, self.probs = labels, probs

    def predict_proba(self, examples, batch_size: int = 64) -> np.ndarray:
        return self.probs


def test_hand_example_where_the_mean_beats_every_member(monkeypatch, tmp_path):
    """Two confident members that are each wrong once, on different examples: the mean gets both right."""
    probs = {"a": np.array([[0.9, 0.1], [0.6, 0.4], [0.1, 0.9]]),   # wrong on the second example
             "b": np.array([[0.7, 0.3], [0.1, 0.9], [0.6, 0.4]])}   # wrong on the third
    for name in probs:
        (tmp_path / name / "model").mkdir(parents=True)
        (tmp_path / name / "model" / "labels.json").write_text('["a", "b"]')
    monkeypatch.setattr("tuneforge.run.load", lambda path, precision=None: FakeRun(["a", "b"], probs[path.name]))
    examples = [Example("x", "a"), Example("y", "b"), Example("z", "b")]
    result = ensemble([tmp_path / "a", tmp_path / "b"], examples, progress=False)
    np.testing.assert_allclose(result.probabilities, [[0.8, 0.2], [0.35, 0.65], [0.35, 0.65]], atol=1e-6)
    assert [m["accuracy"] for m in result.members] == pytest.approx([2 / 3, 2 / 3])
    assert result.metrics["accuracy"] == 1.0
    assert result.gain["accuracy_vs_best_member"] == pytest.approx(1 / 3)


def test_refuses_runs_with_another_label_set(runs, tmp_path):
    other = copy_run(runs[1], tmp_path / "other-labels", labels=["bad", "good", "neutral"])
    with pytest.raises(TuneforgeError, match="do not share one label set") as info:
        ensemble([runs[0], other], progress=False)
    assert "bad, good, neutral" in str(info.value) and "negative, neutral, positive" in str(info.value)


def test_refuses_fewer_than_two_runs_a_repeated_run_and_unknown_labels(runs, tmp_path):
    with pytest.raises(TuneforgeError, match="at least two runs"):
        ensemble(runs[:1], progress=False)
    with pytest.raises(TuneforgeError, match="given twice"):
        ensemble([runs[0], runs[0]], progress=False)
    with pytest.raises(TuneforgeError, match="never seen in training"):
        ensemble(runs, [Example("x", "angry")], progress=False)
    with pytest.raises(TuneforgeError, match="no label"):
        ensemble(runs, [Example("x")], progress=False)
    with pytest.raises(TuneforgeError, match="does not exist"):
        ensemble(runs, tmp_path / "missing.jsonl", progress=False)
    with pytest.raises(TuneforgeError, match="holds no finished model|does not exist"):
        ensemble([runs[0], tmp_path / "not-a-run"], progress=False)


def test_an_input_file_without_the_runs_text_column_says_to_rename_it(runs, tmp_path):
    """The hint said to set text_column, which `tuneforge ensemble` has no option for."""
    bad = tmp_path / "test.csv"
    bad.write_text("review,label\ngreat flight,positive\n", encoding="utf-8")
    with pytest.raises(TuneforgeError) as info:
        ensemble(runs, bad, progress=False)
    message = " ".join(str(info.value).split())
    assert f'The run {runs[0]} reads its texts from the column "text": did you mean "review"? Rename it to "text" ' \
        "in the file." in message
    assert "set text_column" not in message


def test_refuses_to_default_to_test_splits_that_differ(runs, tiny_data, tmp_path):
    # Both split validation (= test) off the training file, with seeds 0 and 1: different examples.
    data = {"train": str(tiny_data["train"]), "max_length": 32}
    a = copy_run(runs[0], tmp_path / "a", data=data)
    b = copy_run(runs[1], tmp_path / "b", data=data)
    with pytest.raises(TuneforgeError, match="test splits differ.*--input"):
        ensemble([a, b], progress=False)
    assert ensemble([a, b], tiny_data["test"], progress=False).metrics["count"] == 30  # a test file works


def test_report_folder(runs, tiny_data, tmp_path):
    result = ensemble(runs, tiny_data["test"], output_dir=tmp_path / "report", progress=False)
    assert result.dir == tmp_path / "report"
    saved = json.loads((result.dir / "ensemble.json").read_text(encoding="utf-8"))
    assert saved["ensemble"]["accuracy"] == result.metrics["accuracy"]
    assert [m["run"] for m in saved["members"]] == [str(r) for r in runs]
    assert saved["gain"] == pytest.approx(result.gain)
    table = (result.dir / "ensemble.md").read_text(encoding="utf-8")
    assert table.count("\n| ") == 2 + 1  # two members, the ensemble
    for name in ("ensemble.png", "confusion_matrix.png"):
        with Image.open(result.dir / name) as image:
            image.verify()
    with pytest.raises(TuneforgeError, match="not empty"):
        ensemble(runs, tiny_data["test"], output_dir=tmp_path / "report", progress=False)
    # a folder inside a file was a NotADirectoryError traceback after every member had scored the data
    with pytest.raises(TuneforgeError, match="ensemble.md is a file, so no folder can be made inside it"):
        ensemble(runs, tiny_data["test"], output_dir=result.dir / "ensemble.md" / "again", progress=False)


# --- command line ---------------------------------------------------------------------------------

def test_cli_end_to_end(runs, tiny_data, tmp_path, monkeypatch, capsys):
    from tuneforge.cli.main import main

    monkeypatch.setattr(sys, "argv", ["tuneforge", "ensemble", *map(str, runs), "--input", str(tiny_data["test"]),
                                      "--output-dir", str(tmp_path / "out"), "--quiet"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code in (None, 0)
    out = capsys.readouterr().out
    expected = ensemble(runs, tiny_data["test"], progress=False)
    assert f"{expected.metrics['accuracy']:.4f}" in out and "ensemble (mean of 2)" in out
    assert "over the mean member" in out
    assert json.loads((tmp_path / "out" / "ensemble.json").read_text())["ensemble"]["accuracy"] == \
        expected.metrics["accuracy"]


def test_cli_mismatched_labels_exit_2_without_traceback(runs, tmp_path):
    other = copy_run(runs[1], tmp_path / "other-labels", labels=["bad", "good", "neutral"])
    src = Path(tuneforge.__file__).resolve().parents[1]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-m", "tuneforge", "ensemble", str(runs[0]), str(other)],
                            capture_output=True, text=True, env=env, timeout=180, cwd=tmp_path)
    assert result.returncode == 2
    assert "error:" in result.stderr and "do not share one label set" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (tmp_path / "runs").exists()  # no report folder for a refused ensemble
