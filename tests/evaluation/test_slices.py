"""eval --by: metrics per slice of a metadata field or of token-length quartiles."""

from __future__ import annotations

import json
import sys

import pytest

import tuneforge
from tuneforge.cli.main import main
from tuneforge.data.records import Example
from tuneforge.errors import TuneforgeError
from tuneforge.evaluation.slices import length_buckets, slice_keys, slice_metrics

pytestmark = pytest.mark.usefixtures("one_thread")
LABELS = ["negative", "neutral", "positive"]


def test_slice_metrics_by_hand():
    # slice a: 3 of 4 right; slice b: 1 of 2 right, only class 2 in its gold labels and predictions
    y_true = [0, 1, 2, 0, 2, 2]
    y_pred = [0, 1, 2, 1, 2, 0]
    keys = ["a", "a", "a", "a", "b", "b"]
    result = slice_metrics(y_true, y_pred, keys, LABELS)
    a, b = result["slices"]["a"], result["slices"]["b"]
    assert (a["count"], a["accuracy"]) == (4, 0.75)
    assert (b["count"], b["accuracy"]) == (2, 0.5)
    # macro-F1 over the classes present in b (0 predicted, 2 gold): F1(0)=0, F1(2)=2/3
    assert b["macro_f1"] == pytest.approx((0 + 2 / 3) / 2)
    assert b["label_counts"] == {"negative": 0, "neutral": 0, "positive": 2}
    assert result["gap"] == {"accuracy": 0.25, "best": "a", "worst": "b"}


def test_length_buckets_are_quartiles_named_by_their_range():
    examples = [Example(text=" ".join(["w"] * n), label="x") for n in [1, 2, 3, 4, 5, 6, 7, 8]]
    keys = length_buckets(examples)
    assert keys == ["1-2 words", "1-2 words", "3-4 words", "3-4 words", "5-6 words", "5-6 words", "7-8 words",
                    "7-8 words"]
    same = [Example(text="a b", label="x")] * 5  # one length: one bucket
    assert set(length_buckets(same)) == {"2-2 words"}


def test_an_unknown_field_names_the_close_one():
    examples = [Example(text="t", label="x", meta={"source": "web"}), Example(text="u", label="x")]
    assert slice_keys(examples, "source") == ["web", "(missing)"]
    with pytest.raises(TuneforgeError, match='no example has a field "sorce".*Did you mean "source"'):
        slice_keys(examples, "sorce")


@pytest.fixture(scope="module")
def run_dir(make_tiny_config, tmp_path_factory):
    cfg = make_tiny_config(tmp_path_factory.mktemp("slices") / "run")
    cfg["train"]["epochs"] = 1
    return tuneforge.train(cfg, progress=False).dir


def test_eval_by_source_and_length_from_the_cli(run_dir, tiny_data, tmp_path, monkeypatch, capsys):
    target = tmp_path / "eval.json"
    monkeypatch.setattr(sys, "argv", ["tuneforge", "eval", str(run_dir), str(tiny_data["test"]), "--by", "source",
                                      "--by", "length", "--output", str(target)])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "by source" in printed and "by length" in printed
    metrics = json.loads(target.read_text())
    rows = [json.loads(line) for line in tiny_data["test"].read_text().splitlines()]
    by_source = metrics["eval.by"]["source"]["slices"]
    assert set(by_source) == {"web", "app"}
    assert sum(s["count"] for s in by_source.values()) == len(rows) == metrics["eval.count"]
    assert by_source["web"]["count"] == sum(r["source"] == "web" for r in rows)
    # the slices' accuracies average back to the overall accuracy, weighted by support
    weighted = sum(s["accuracy"] * s["count"] for s in by_source.values()) / len(rows)
    assert weighted == pytest.approx(metrics["eval.accuracy"])
    by_length = metrics["eval.by"]["length"]["slices"]
    assert all(key.endswith("tokens") for key in by_length) and 2 <= len(by_length) <= 4
    assert sum(s["count"] for s in by_length.values()) == len(rows)
    for field in ("source", "length"):  # a picture per field next to the JSON
        assert (tmp_path / f"eval-by-{field}.png").read_bytes()[:4] == b"\x89PNG"


def test_eval_by_from_python(run_dir, tiny_data):
    from tuneforge.data import read_examples

    run = tuneforge.load(run_dir)
    examples = read_examples(tiny_data["test"])
    metrics = run.evaluate(examples, by="source")
    assert metrics["accuracy"] == pytest.approx(run.evaluate(examples)["accuracy"])
    web = [e for e in examples if e.meta["source"] == "web"]
    assert metrics["by"]["source"]["slices"]["web"]["accuracy"] == pytest.approx(run.evaluate(web)["accuracy"])


def test_eval_by_a_missing_field_is_a_clear_error(run_dir, tiny_data, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["tuneforge", "eval", str(run_dir), str(tiny_data["test"]), "--by", "sourse"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    assert 'Did you mean "source"' in capsys.readouterr().err
