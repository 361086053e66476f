"""``tuneforge export RUN_DIR OUT --format onnx``: the ONNX graph predicts what the run predicts, for a merged
method (lora) and for one that stays in the graph unmerged (prompt: virtual tokens change the sequence length),
at batch sizes and lengths other than the traced ones; int8; the parity report; ``tuneforge.load`` on the folder."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
import yaml

import tuneforge
from tuneforge.data import read_examples
from tuneforge.errors import TuneforgeError
from tuneforge.onnx import OnnxRun

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

# Lengths from 1 word to more than the traced example; batch sizes 1, 3 and 7 (the trace used 2).
TEXTS = ["late", "the crew was friendly and the seat was great today", "my bag",
         "a very rude crew again today and my bag was lost and the flight was late and the gate was closed",
         "flight", "thanks", "the schedule question for our route today", "awful", "best plane", "our ticket"]


@pytest.fixture(scope="module", params=["lora", "prompt"])
def run(request, make_tiny_config, tmp_path_factory):
    cfg = make_tiny_config(tmp_path_factory.mktemp("onnx") / "run")
    cfg["method"] = {"name": request.param}
    cfg["train"].update(max_steps=3, learning_rate=1e-2)
    return tuneforge.load(tuneforge.train(cfg, progress=False).dir, precision="fp32")


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    return run.export(tmp_path_factory.mktemp("out") / "onnx", format="onnx", quantize="int8", parity_samples=20)


def test_onnx_probabilities_equal_the_run_at_other_batch_sizes_and_lengths(run, exported):
    onnx_run = tuneforge.load(exported)
    assert isinstance(onnx_run, OnnxRun) and onnx_run.labels == run.labels
    fp32 = OnnxRun.load(exported, variant="fp32")
    for batch_size in (1, 3, 7):
        np.testing.assert_allclose(fp32.predict_proba(TEXTS, batch_size=batch_size), run.predict_proba(TEXTS),
                                   atol=1e-4, rtol=0)


class BarrierSession:
    """Wraps an onnxruntime session: the first two ``run`` calls wait for each other (so they must come from two
    threads at once; a timeout fails the test instead of hanging it) and every call records its thread."""

    def __init__(self, session) -> None:
        import threading

        self.session, self.barrier = session, threading.Barrier(2, timeout=60)
        self.seen: list[int] = []  # list.append is atomic; a counter's += is not

    @property
    def calls(self) -> int:
        return len(self.seen)

    @property
    def threads(self) -> set[int]:
        return set(self.seen)

    def get_inputs(self):
        return self.session.get_inputs()

    def run(self, outputs, feed):
        import threading

        self.seen.append(threading.get_ident())
        if len(self.seen) <= 2:  # the first call blocks until a second one comes, so from another thread
            self.barrier.wait()
        return self.session.run(outputs, feed)


def test_parallel_batches_runs_passes_on_two_threads_at_once_with_the_same_answers(run, exported):
    texts = TEXTS * 7  # 70 texts of many lengths
    ops = OnnxRun.load(exported, variant="fp32", parallel="ops", threads=2)
    want = ops.predict_proba(texts, batch_size=8)
    batches = OnnxRun.load(exported, variant="fp32", parallel="batches", threads=2)
    assert batches.workers == 2 and ops.workers == 1
    batches.session = BarrierSession(batches.session)
    got = batches.predict_proba(texts, batch_size=8)
    assert len(batches.session.threads) == 2 and batches.session.calls == 9  # ceil(70 / 8) passes
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)  # every row lands in its own place
    # one micro-batch of 6 texts is cut into one slice per thread
    batches.session = BarrierSession(batches.session.session)
    np.testing.assert_allclose(batches.predict_proba(texts[:6], batch_size=64), want[:6], atol=1e-5, rtol=0)
    assert batches.session.calls == 2 and len(batches.session.threads) == 2
    # one text: one pass on the calling thread, no pool
    import threading

    single = OnnxRun.load(exported, variant="fp32", threads=2)
    single.session = BarrierSession(single.session)
    single.session.barrier = threading.Barrier(1)  # one call: nothing to wait for
    np.testing.assert_allclose(single.predict_proba(texts[:1]), want[:1], atol=1e-5, rtol=0)
    assert single.session.threads == {threading.get_ident()}


def test_bad_parallel_threads_and_batch_size_are_refused_in_the_users_words(exported):
    with pytest.raises(TuneforgeError, match='parallel "cores"'):
        OnnxRun.load(exported, parallel="cores")
    with pytest.raises(TuneforgeError, match="threads=0"):
        OnnxRun.load(exported, threads=0)
    with pytest.raises(TuneforgeError, match="batch_size=0"):
        OnnxRun.load(exported, threads=1).predict_proba(TEXTS, batch_size=0)


def test_the_graph_runs_in_onnxruntime_alone_with_dynamic_axes(run, exported):
    import onnxruntime as ort

    session = ort.InferenceSession(str(exported / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    assert names[:2] == ["input_ids", "attention_mask"]
    for texts in (TEXTS[:1], TEXTS[:5], TEXTS):
        enc = run.tokenizer(texts, padding=True, return_tensors="np")
        feed = {n: enc[n].astype(np.int64) if n in enc else np.zeros_like(enc["input_ids"]) for n in names}
        logits = session.run(["logits"], feed)[0]
        probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        np.testing.assert_allclose(probs, run.predict_proba(texts), atol=1e-4, rtol=0)


def test_export_json_and_parity_report_describe_the_folder(run, exported):
    info = json.loads((exported / "export.json").read_text(encoding="utf-8"))
    assert info["method"] == run.config.method.name and info["format"] == "onnx" and info["quantize"] == "int8"
    assert info["merged"] == (run.config.method.name == "lora")
    assert info["onnx"]["opset"] >= 17 and info["labels"] == run.labels
    parity = json.loads((exported / "parity.json").read_text(encoding="utf-8"))
    assert parity["warning"] is None and parity["source"].startswith("test split")
    fp32, int8 = parity["models"]["model.onnx"], parity["models"]["model.int8.onnx"]
    assert fp32["samples"] == 20 and fp32["max_abs_prob_diff"] < 1e-4 and fp32["accuracy_difference"] == 0
    assert 0 <= int8["max_abs_prob_diff"] < 0.1 and "accuracy_export" in int8
    assert {"config.yaml", "labels.json", "tokenizer.json", "model.onnx", "model.int8.onnx"} <= {
        p.name for p in exported.iterdir()}


def test_load_gives_the_int8_model_with_run_shaped_predictions(run, exported):
    onnx_run = tuneforge.load(exported)
    assert onnx_run.file == "model.int8.onnx"
    got, want = onnx_run.predict(TEXTS[:3]), run.predict(TEXTS[:3])
    assert [set(p) for p in got] == [{"label", "scores"}] * 3
    assert [list(p["scores"]) for p in got] == [list(p["scores"]) for p in want]
    examples = read_examples(run.config.data.test)
    assert onnx_run.evaluate(examples)["count"] == len(examples)


def test_an_unmerged_hf_export_loads_with_tuneforge(run, tmp_path):
    folder = run.export(tmp_path / "hf", format="hf", merge=False, parity_samples=8)
    assert json.loads((folder / "export.json").read_text(encoding="utf-8"))["merged"] is False
    np.testing.assert_allclose(tuneforge.load(folder, precision="fp32").predict_proba(TEXTS), run.predict_proba(TEXTS),
                               atol=1e-6, rtol=0)
    assert json.loads((folder / "parity.json").read_text(encoding="utf-8"))["models"]["model/"]["max_abs_prob_diff"] \
        < 1e-6


def test_export_refuses_a_non_empty_folder_and_bad_options(run, tmp_path):
    (tmp_path / "keep.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(TuneforgeError, match="exists and is not empty"):
        run.export(tmp_path, format="onnx")
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
    with pytest.raises(TuneforgeError) as info:
        run.export(tmp_path / "new", format="tflite", quantize="int4")
    assert "--format" in str(info.value) and "--quantize" in str(info.value)
    with pytest.raises(TuneforgeError, match="applies to --format onnx"):
        run.export(tmp_path / "new", format="hf", quantize="int8")
    assert not (tmp_path / "new").exists()


def test_parity_falls_back_to_built_in_sentences_when_the_data_is_gone(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run.dir, copy)
    config = yaml.safe_load((copy / "config.yaml").read_text(encoding="utf-8"))
    config["data"] |= {k: str(tmp_path / f"moved-{k}.jsonl") for k in ("train", "validation", "test")}
    (copy / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    folder = tuneforge.load(copy, precision="fp32").export(tmp_path / "out", format="hf", merge=False)
    parity = json.loads((folder / "parity.json").read_text(encoding="utf-8"))
    assert parity["source"] == "built-in sentences" and "could not be read" in parity["warning"]
    assert parity["models"]["model/"]["max_abs_prob_diff"] < 1e-6
    assert "accuracy_run" not in parity["models"]["model/"]


@pytest.mark.parametrize("run", ["prompt"], indirect=True)
def test_cli_export_then_predict_and_eval_on_the_onnx_folder(run, tmp_path, monkeypatch, capsys):
    from tuneforge.cli.main import main

    def cli(*args: str) -> None:
        monkeypatch.setattr(sys, "argv", ["tuneforge", *args])
        with pytest.raises(SystemExit) as info:
            main()
        assert info.value.code in (0, None)

    out = tmp_path / "onnx"
    cli("export", str(run.dir), str(out), "--format", "onnx", "--parity-samples", "10")
    assert "max |Δp|" in capsys.readouterr().out
    cli("predict", str(out), "--text", "late", "--text", "great crew")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["text"] for line in lines] == ["late", "great crew"] and lines[0]["label"] in run.labels
    cli("eval", str(out), str(run.config.data.test), "--output", str(tmp_path / "eval.json"))
    assert json.loads((tmp_path / "eval.json").read_text(encoding="utf-8"))["eval.count"] == 30


def test_cli_errors_are_one_paragraph_with_exit_code_2(run, tmp_path, monkeypatch, capsys):
    from tuneforge.cli.main import main

    monkeypatch.setattr(sys, "argv", ["tuneforge", "export", str(run.dir), str(tmp_path / "x"), "--quantize", "int8"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2 and "Traceback" not in capsys.readouterr().err
