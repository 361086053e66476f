"""Many runs, one backbone: ``tuneforge.load([...])`` reads the base model once, shares its weights, and
predicts with the adapter named per call exactly as each run loaded alone."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tuneforge
from tuneforge.data import read_examples
from tuneforge.errors import TuneforgeError
from tuneforge.models import shared as shared_module


def _two_label_copy(src, dst):
    rows = [json.loads(line) for line in src.read_text(encoding="utf-8").splitlines()]
    dst.write_text("".join(json.dumps(r) + "\n" for r in rows if r["label"] != "neutral"), encoding="utf-8")
    return str(dst)


@pytest.fixture(scope="module")
def runs(make_tiny_config, tiny_data, tmp_path_factory):
    """Four runs on the tiny BERT: three methods on 3 labels, prompt tuning on 2 labels (another head size)."""
    root = tmp_path_factory.mktemp("multi")
    out = {}
    for name, method in [("sentiment-lora", "lora"), ("sentiment-adapter", "adapter"),
                         ("polarity-prompt", "prompt"), ("sentiment-bitfit", "bitfit")]:
        cfg = make_tiny_config(root / name)
        cfg["method"] = {"name": method}
        cfg["train"].update(epochs=2, learning_rate=1e-2)
        if name.startswith("polarity"):
            for split in ("train", "validation", "test"):
                cfg["data"][split] = _two_label_copy(tiny_data[split], root / f"{split}-2.jsonl")
        out[name] = tuneforge.train(cfg, progress=False).dir
    return out


@pytest.fixture(scope="module")
def texts(tiny_data):
    return [e.text for e in read_examples(tiny_data["test"])][:10]


def test_each_adapter_predicts_what_its_run_predicts_alone(runs, texts, monkeypatch):
    reads = []
    original = shared_module.load_backbone
    monkeypatch.setattr(shared_module, "load_backbone", lambda *a: reads.append(a) or original(*a))
    together = tuneforge.load(list(runs.values()), precision="fp32")
    assert len(reads) == 1, "the backbone is read from disk once"
    assert isinstance(together, tuneforge.Runs) and together.names == list(runs)

    alone = {name: tuneforge.load(path, precision="fp32").predict_proba(texts) for name, path in runs.items()}
    for name in [*runs, *reversed(runs)]:  # switching back and forth leaves no trace
        np.testing.assert_allclose(together.predict_proba(texts, adapter=name), alone[name], atol=1e-6, rtol=0)
    assert alone["polarity-prompt"].shape == (len(texts), 2)
    predictions = together.predict(texts[:2], adapter="polarity-prompt")
    assert set(predictions[0]["scores"]) == {"negative", "positive"}
    assert not np.allclose(alone["sentiment-lora"], alone["sentiment-adapter"])  # they are different models


def test_the_base_weights_are_in_memory_once(runs):
    together = tuneforge.load({"lora": runs["sentiment-lora"], "adapter": runs["sentiment-adapter"],
                               "prompt": runs["polarity-prompt"]}, precision="fp32")

    def embedding_pointer(adapter: str) -> int:
        params = dict(together[adapter].model.named_parameters())
        [name] = [n for n in params if n.endswith("word_embeddings.weight")]
        return params[name].data_ptr()

    assert embedding_pointer("lora") == embedding_pointer("adapter") == embedding_pointer("prompt")


def test_evaluate_names_the_adapter(runs, tiny_data):
    together = tuneforge.load(list(runs.values()), precision="fp32")
    examples = read_examples(tiny_data["test"])
    alone = tuneforge.load(runs["sentiment-adapter"], precision="fp32").evaluate(examples)
    assert together.evaluate(examples, adapter="sentiment-adapter")["accuracy"] == alone["accuracy"]


def test_unknown_adapter_name_suggests_the_closest(runs, texts):
    together = tuneforge.load([runs["sentiment-lora"], runs["sentiment-adapter"]])
    with pytest.raises(TuneforgeError, match='"sentiment-lor" is not loaded.*sentiment-lora'):
        together.predict(texts, adapter="sentiment-lor")


def test_runs_on_different_backbones_are_refused(runs, make_tiny_config, tmp_path):
    import shutil

    other = tmp_path / "other-run"
    shutil.copytree(runs["sentiment-lora"], other)
    cfg = (other / "config.yaml").read_text(encoding="utf-8")
    model = make_tiny_config(tmp_path)["model"]
    moved = tmp_path / "another-model"
    shutil.copytree(model, moved)
    (other / "config.yaml").write_text(cfg.replace(model, str(moved)), encoding="utf-8")
    with pytest.raises(TuneforgeError, match="different backbones"):
        tuneforge.load([runs["sentiment-lora"], other])
