"""explain: integrated gradients through every method of a classification run, the JSON, HTML and PNG outputs."""

from __future__ import annotations

import json
import sys

import pytest
import torch

import tuneforge
from tuneforge.cli.main import main
from tuneforge.errors import TuneforgeError
from tuneforge.run import Run

pytest.importorskip("captum")
pytestmark = pytest.mark.usefixtures("one_thread")

METHODS = {"lora": {"name": "lora", "r": 4}, "adapter": {"name": "adapter"}, "ia3": {"name": "ia3"},
           "prompt": {"name": "prompt", "num_virtual_tokens": 4}, "prefix": {"name": "prefix", "num_virtual_tokens": 4}}


@pytest.fixture(scope="module")
def full_run(make_tiny_config, tmp_path_factory):
    """8 epochs of full fine-tuning: enough for the tiny model to tie "flight" to neutral, not enough to saturate
    (a saturated model needs thousands of integration steps, as the docs say)."""
    cfg = make_tiny_config(tmp_path_factory.mktemp("explain") / "full")
    cfg["train"]["epochs"] = 8
    return tuneforge.train(cfg, progress=False).dir


@pytest.fixture(scope="module")
def method_runs(make_tiny_config, tmp_path_factory):
    runs = {}
    for name, method in METHODS.items():
        cfg = make_tiny_config(tmp_path_factory.mktemp("explain") / name)
        cfg["method"] = method
        cfg["train"].update(epochs=1, learning_rate=1e-2)
        runs[name] = tuneforge.train(cfg, progress=False).dir
    return runs


def test_attributions_add_up_to_the_change_in_probability(full_run):
    run = Run.load(full_run, precision="fp32")
    e = tuneforge.explain(run, "my flight was today again", steps=100)[0]
    ids = run.tokenizer("my flight was today again")["input_ids"]
    assert e.tokens == run.tokenizer.convert_ids_to_tokens(ids)
    assert len(e.scores) == len(e.tokens) and e.tokens[0] == "[CLS]" and e.tokens[-1] == "[SEP]"
    assert e.scores[0] == 0.0 and e.scores[-1] == 0.0  # special tokens stay in the baseline: exactly zero
    assert e.label == run.predict(["my flight was today again"])[0]["label"] == e.target
    assert e.probability == pytest.approx(run.predict_proba(["my flight was today again"])[0, run.labels.index(
        e.label)], abs=1e-5)
    # the baseline really is [CLS] [PAD] ... [PAD] [SEP]
    pad = run.tokenizer.pad_token_id
    baseline = torch.tensor([[ids[0]] + [pad] * (len(ids) - 2) + [ids[-1]]])
    with torch.no_grad():
        p_base = torch.softmax(run.model(input_ids=baseline).logits, -1)[0, run.labels.index(e.target)]
    assert e.baseline_probability == pytest.approx(float(p_base), abs=1e-6)
    difference = e.probability - e.baseline_probability
    assert abs(difference) > 0.05, "the fixture model learned nothing: the test would be trivial"
    # completeness (Sundararajan et al. 2017): the scores sum to f(x) - f(baseline) with enough steps
    assert sum(e.scores) == pytest.approx(difference, abs=1e-3)
    assert e.convergence_delta == pytest.approx(sum(e.scores) - difference, abs=1e-5)
    coarse = tuneforge.explain(run, "my flight was today again", steps=2)[0]
    assert abs(coarse.convergence_delta) > abs(e.convergence_delta)
    # the word the model keys on carries the prediction
    words = {t: s for t, s in zip(e.tokens[1:-1], e.scores[1:-1])}
    assert e.label == "neutral" and max(words, key=words.get) == "flight", words


def test_scores_for_every_label_cancel_out(full_run):
    """Probabilities sum to one, and integrated gradients is linear in the function: per token, the scores
    toward all labels sum to zero. This also checks that --label explains the label asked for."""
    run = Run.load(full_run, precision="fp32")
    per_label = [tuneforge.explain(run, ["the flight was late"], label=name, steps=50)[0] for name in run.labels]
    assert [e.target for e in per_label] == run.labels
    assert len({e.label for e in per_label}) == 1  # the prediction does not depend on the label explained
    for position in range(len(per_label[0].tokens)):
        assert sum(e.scores[position] for e in per_label) == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(TuneforgeError, match='"neutrall" is not a label of this run. Did you mean "neutral"'):
        tuneforge.explain(run, ["x"], label="neutrall")


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_is_explained_through_its_own_forward(method_runs, name):
    """The probability explained is the one the run predicts (LoRA through peft, prompt tokens prepended,
    prefixes in attention, adapters in the layers), and completeness holds for it."""
    run = Run.load(method_runs[name], precision="fp32")
    texts = ["the crew was rude today", "thanks for a smooth flight"]
    explanations = tuneforge.explain(run, texts, steps=64)
    probs = run.predict_proba(texts)
    for e, row in zip(explanations, probs):
        assert e.label == run.labels[int(row.argmax())]
        assert e.probability == pytest.approx(float(row.max()), abs=1e-5)
        assert len(e.scores) == len(e.tokens) and e.scores[0] == 0.0 and e.scores[-1] == 0.0
        assert any(s != 0.0 for s in e.scores[1:-1])
        assert sum(e.scores) == pytest.approx(e.probability - e.baseline_probability, abs=1e-4)


def test_explain_cli_writes_json_html_and_png(full_run, tmp_path, monkeypatch, capsys):
    html, png = tmp_path / "why.html", tmp_path / "why.png"
    monkeypatch.setattr(sys, "argv", ["tuneforge", "explain", str(full_run), "--text", "my flight was <late>",
                                      "--text", "great crew", "--steps", "20", "--html", str(html), "--png", str(png)])
    with pytest.raises(SystemExit) as info:
        main()
    assert (info.value.code or 0) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [d["text"] for d in lines] == ["my flight was <late>", "great crew"]
    for d in lines:
        assert set(d) >= {"tokens", "scores", "label", "probability", "baseline_probability", "convergence_delta"}
        assert len(d["tokens"]) == len(d["scores"]) and d["label"] in ("negative", "neutral", "positive")
    page = html.read_text()
    assert page.count("<h2>") == 2 and "&lt;" in page and "<late" not in page  # the user's text is escaped
    flight = lines[0]["scores"][lines[0]["tokens"].index("flight")]
    assert f'title="{flight:+.4f}">flight</span>' in page  # each word on its own colour, its score on hover
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_explain_cli_errors_name_the_fix(full_run, tmp_path, monkeypatch, capsys):
    for argv, expected in [([str(full_run)], "Give texts with --text"),
                           ([str(full_run), "--text", "ok", "--label", "postive"], 'Did you mean "positive"'),
                           ([str(tmp_path / "nope"), "--text", "ok"], "does not exist"),
                           ([str(full_run), "--text", "  "], "is empty"),
                           # tracebacks after the integrated gradients had run, before
                           ([str(full_run), "--text", "ok", "--png", str(tmp_path)],
                            f"--png {tmp_path} is a folder; give a file path inside it, such as "
                            f"{tmp_path / 'scores.png'}"),
                           ([str(full_run), "--text", "ok", "--output", str(full_run / "config.yaml" / "x.jsonl")],
                            "config.yaml is a file, so it cannot hold a folder")]:
        monkeypatch.setattr(sys, "argv", ["tuneforge", "explain", *argv])
        with pytest.raises(SystemExit) as info:
            main()
        assert info.value.code == 2
        assert expected in " ".join(capsys.readouterr().err.split())


def test_a_decoder_run_is_explained_too(make_tiny_config, tmp_path):
    """A Llama-style classifier reads the last token; its tokenizer may have no special tokens to keep."""
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1] / "models"))
    from test_backbones_decoder import build_tiny_decoder

    cfg = make_tiny_config(tmp_path / "run")
    cfg.update(model=str(build_tiny_decoder(tmp_path / "decoder")), method={"name": "lora"})
    cfg["train"]["epochs"] = 1
    run = Run.load(tuneforge.train(cfg, progress=False).dir, precision="fp32")
    [e] = run.explain(["the crew was rude today"], steps=64)
    assert e.tokens == run.tokenizer.convert_ids_to_tokens(run.tokenizer("the crew was rude today")["input_ids"])
    assert e.probability == pytest.approx(float(run.predict_proba(["the crew was rude today"]).max()), abs=1e-5)
    assert any(s != 0.0 for s in e.scores)
    assert sum(e.scores) == pytest.approx(e.probability - e.baseline_probability, abs=1e-4)


def test_a_token_classification_run_is_refused_with_the_reason(tmp_path, monkeypatch, capsys):
    """It crashed inside Captum with an IndexError (a tag id used as a label id of a per-token output)."""
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1] / "tasks"))
    from tiny_ner import tiny_ner_config

    run = tuneforge.train(tiny_ner_config(tmp_path), progress=False)
    monkeypatch.setattr(sys, "argv", ["tuneforge", "explain", str(run.dir), "--text", "john met mary", "--quiet"])
    with pytest.raises(SystemExit) as info:
        main()
    err = " ".join(capsys.readouterr().err.split())
    assert info.value.code == 2 and "Traceback" not in err
    assert "is a token-classification run; explain scores the words behind a text classifier's label" in err


def test_a_prompt_run_is_explained_on_the_prompt_predict_scores(make_tiny_config, tmp_path):
    """A run trained through a cloze template (prompt:) was explained on the bare text, so the probability
    explained was not the one predict gives (0.470 against 0.434 on this fixture)."""
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1] / "models"))
    from test_backbones_decoder import build_tiny_decoder

    cfg = make_tiny_config(tmp_path / "run")
    cfg.update(model=str(build_tiny_decoder(tmp_path / "decoder")),
               prompt={"template": "{text} it was {answer}",
                       "verbalizer": {"negative": "rude", "neutral": "crew", "positive": "great"}})
    cfg["train"]["max_steps"] = 3
    run = Run.load(tuneforge.train(cfg, progress=False).dir, precision="fp32")
    [e] = run.explain(["the crew was rude today"], steps=8)
    expected = run.predict_proba(["the crew was rude today"])[0]
    assert [e.probabilities[name] for name in run.labels] == pytest.approx(expected.tolist(), abs=1e-5)
    assert e.text.startswith("the crew was rude today") and "it was" in e.text  # the prompt, as the model reads it
