"""``tuneforge export RUN_DIR --merge OUT``: a plain Hugging Face model that transformers loads alone and that
predicts what the run predicts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

import tuneforge
from tuneforge.data import read_examples
from tuneforge.errors import TuneforgeError


@pytest.fixture(scope="module", params=["lora", "ia3", "bitfit"])
def run(request, make_tiny_config, tmp_path_factory):
    cfg = make_tiny_config(tmp_path_factory.mktemp("export") / "run")
    cfg["method"] = {"name": request.param}
    cfg["train"].update(epochs=1, learning_rate=1e-2)
    return tuneforge.train(cfg, progress=False)


def transformers_probabilities(folder, texts: list[str]) -> torch.Tensor:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        return model(**tokenizer(texts, padding=True, return_tensors="pt")).logits.softmax(-1)


def test_merged_export_predicts_what_the_run_predicts(run, tmp_path, monkeypatch):
    from tuneforge.cli.main import main

    monkeypatch.setattr(sys, "argv", ["tuneforge", "export", str(run.dir), "--merge", str(tmp_path / "merged")])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code in (0, None)

    folder = tmp_path / "merged"
    assert (folder / "model.safetensors").is_file()
    assert not (folder / "adapter_config.json").exists()
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert config["id2label"] == {str(i): label for i, label in enumerate(run.labels)}
    assert json.loads((folder / "export.json").read_text(encoding="utf-8"))["method"] == run.config.method.name
    parity = json.loads((folder / "parity.json").read_text(encoding="utf-8"))  # checked against the run on export
    assert parity["models"]["model.safetensors"]["max_abs_prob_diff"] < 1e-4

    texts = [e.text for e in read_examples(run.config.data.test)][:12]
    expected = tuneforge.load(run.dir, precision="fp32").predict_proba(texts)
    actual = transformers_probabilities(folder, texts)
    torch.testing.assert_close(actual, torch.from_numpy(expected), atol=1e-4, rtol=0)


def test_the_export_loads_in_a_python_without_tuneforge(run, tmp_path):
    folder = run.dir.parent / "merged-for-subprocess"
    if not folder.exists():
        tuneforge.load(run.dir, precision="fp32").export_merged(folder)
    code = ("import sys, transformers\n"
            "assert 'tuneforge' not in sys.modules\n"
            f"m = transformers.AutoModelForSequenceClassification.from_pretrained({str(folder)!r})\n"
            "print(m.config.id2label[0], type(m).__name__)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [run.labels[0], "BertForSequenceClassification"]


def test_methods_that_do_not_merge_say_so(make_tiny_config, tmp_path):
    cfg = make_tiny_config(tmp_path / "run")
    cfg["method"] = {"name": "adapter"}
    cfg["train"]["epochs"] = 1
    run = tuneforge.train(cfg, progress=False)
    with pytest.raises(TuneforgeError, match="adapter does not merge.*Methods that merge: .*lora"):
        tuneforge.load(run.dir).export_merged(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_export_never_writes_into_a_folder_in_use(run, tmp_path):
    (tmp_path / "keep.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(TuneforgeError, match="exists and is not empty"):
        tuneforge.load(run.dir).export_merged(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize("where", ["file", "inside-file"])
def test_export_to_a_file_or_into_a_file_is_refused_before_any_work(run, tmp_path, where):
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    target = tmp_path / "notes.txt" if where == "file" else tmp_path / "notes.txt" / "export"
    expected = "is a file, not a folder" if where == "file" else "notes.txt is a file, so no folder can be made"
    with pytest.raises(TuneforgeError, match=expected):  # the second raised NotADirectoryError after the merge
        tuneforge.load(run.dir).export_merged(target)
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "mine"
