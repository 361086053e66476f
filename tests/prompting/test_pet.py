"""Prompt-based fine-tuning (PET) on tiny language models: the untrained PET model predicts exactly what
zero-shot scoring predicts, training through the template works with every kind of method, and the run
folder loads back to the same predictions."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
import yaml
from tiny_lms import tiny_causal_lm, tiny_mlm  # noqa: F401 (fixtures)

import tuneforge
from tuneforge.cli.main import main
from tuneforge.config import TrainConfig, load_config
from tuneforge.data.records import Example
from tuneforge.errors import TuneforgeError
from tuneforge.prompting.pet import load_prompt_backbone
from tuneforge.prompting.scoring import PromptScorer, load_language_model
from tuneforge.training.batching import collate, encode

MASKED_PROMPT = {"template": "{text}. it was {answer}.",
                 "verbalizer": {"negative": ["bad", "unhappy"], "neutral": "okay", "positive": "good"},
                 "multi_token": "first"}
CAUSAL_PROMPT = {"template": "Tweet: {text}\nSentiment: {answer}",
                 "verbalizer": {"negative": "bad", "neutral": "okay", "positive": "good"}, "multi_token": "first"}
TEXTS = ["late flight again", "thanks for the great crew", "where is my bag", "seat was fine"]
LABELS = ["negative", "neutral", "positive"]


def pet_config(model, data, output_dir, prompt, method="full", **train) -> dict:
    return {"name": "tiny-pet", "model": str(model),
            "data": {"train": str(data["train"]), "validation": str(data["validation"]), "test": str(data["test"]),
                     "max_length": 48},
            "prompt": prompt, "method": method,
            "train": {"batch_size": 8, "epochs": 1, "learning_rate": 1e-3, "precision": "fp32", **train},
            "output_dir": str(output_dir)}


def _pet_probs(backbone, inputs, examples):
    enc = encode(inputs.render(examples), backbone.tokenizer, LABELS, 48)
    side = getattr(backbone.tokenizer, "padding_side", "right")
    batch = collate(enc, list(range(len(examples))), pad_id=backbone.tokenizer.pad_token_id or 0, padding_side=side)
    backbone.model.eval()
    with torch.no_grad():
        logits = backbone.model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    return torch.softmax(logits, -1).numpy()


@pytest.mark.parametrize("kind", ["masked", "causal"])
def test_untrained_pet_model_predicts_what_zero_shot_scoring_predicts(kind, tiny_mlm, tiny_causal_lm):  # noqa: F811
    from tuneforge.prompting.config import PromptConfig

    # Words that zero-shot scoring also scores with one mask / one token (it gives a word of k tokens k masks).
    single = {**MASKED_PROMPT, "verbalizer": {"negative": ["bad", "late"], "neutral": "okay", "positive": "good"},
              "multi_token": "mean"}
    model, raw = (tiny_mlm, single) if kind == "masked" else (tiny_causal_lm, CAUSAL_PROMPT)
    prompt = PromptConfig(**raw)
    examples = [Example(text=t) for t in TEXTS]
    expected = PromptScorer(load_language_model(str(model)), prompt, max_length=48).predict_proba(examples)
    backbone, inputs = load_prompt_backbone(str(model), prompt, LABELS, 48)
    assert backbone.new_parameters == set()
    np.testing.assert_allclose(_pet_probs(backbone, inputs, examples), expected, atol=1e-5)


def test_pet_refuses_words_it_cannot_score_in_one_pass(tiny_mlm, tiny_causal_lm):  # noqa: F811
    from tuneforge.prompting.config import PromptConfig

    mixed = PromptConfig(**{**MASKED_PROMPT, "multi_token": "mean"})  # "unhappy" is 2 tokens, "bad" 1
    with pytest.raises(TuneforgeError, match=r'different numbers of tokens: .*"unhappy" 2 tokens.*multi_token: first'):
        load_prompt_backbone(str(tiny_mlm), mixed, LABELS, 48)
    long_word = PromptConfig(**{**CAUSAL_PROMPT, "multi_token": "mean",
                                "verbalizer": {"negative": "negative", "neutral": "okay", "positive": "good"}})
    with pytest.raises(TuneforgeError, match="first token"):
        load_prompt_backbone(str(tiny_causal_lm), long_word, LABELS, 48)
    with pytest.raises(TuneforgeError, match=r"no word for \['neutral'\]"):
        load_prompt_backbone(str(tiny_mlm), PromptConfig(**{**MASKED_PROMPT, "verbalizer": {"negative": "bad",
                                                                                             "positive": "good"}}),
                             LABELS, 48)


@pytest.mark.parametrize("kind,method", [("masked", "full"), ("masked", "lora"), ("masked", "prompt"),
                                         ("masked", "adapter"), ("causal", "lora"), ("causal", "prefix"),
                                         ("causal", "prompt")])
def test_pet_trains_and_reloads_with_every_kind_of_method(kind, method, tiny_mlm, tiny_causal_lm,  # noqa: F811
                                                          tiny_data, tmp_path):
    model, prompt = (tiny_mlm, MASKED_PROMPT) if kind == "masked" else (tiny_causal_lm, CAUSAL_PROMPT)
    method_cfg = {"name": method, "num_virtual_tokens": 4} if method == "prompt" else method
    run = tuneforge.train(pet_config(model, tiny_data, tmp_path / "run", prompt, method_cfg), progress=False)
    folder = tmp_path / "run"
    assert json.loads((folder / "prompt.json").read_text())["training"] == "pet"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert 0 <= metrics["test.accuracy"] <= 1 and metrics["trainable_parameters"] > 0
    if method != "full":  # only the method's own parameters train: no head is added to the language model
        assert metrics["trainable_percent"] < 50
    probs = run.predict_proba(TEXTS)
    again = tuneforge.load(folder)
    assert again.labels == LABELS and again.prompt_inputs is not None
    np.testing.assert_allclose(again.predict_proba(TEXTS), probs, atol=1e-5)
    assert again.predict(["late flight"])[0]["label"] in LABELS
    if method == "lora":
        with pytest.raises(TuneforgeError, match="trained through a prompt"):
            again.export(tmp_path / "export")


def test_pet_training_changes_predictions_and_learns_the_training_set(tiny_mlm, tiny_data, tmp_path):  # noqa: F811
    from tuneforge.prompting.config import PromptConfig

    cfg = pet_config(tiny_mlm, tiny_data, tmp_path / "run", MASKED_PROMPT, "full", epochs=8, learning_rate=3e-3)
    loaded = load_config(TrainConfig, data=cfg)
    examples = [Example(text=t) for t in TEXTS]
    before = PromptScorer(load_language_model(str(tiny_mlm)), PromptConfig(**MASKED_PROMPT),
                          max_length=48).predict_proba(examples)
    run = tuneforge.train(loaded, progress=False)
    assert np.abs(run.predict_proba(TEXTS) - before).max() > 1e-2
    train = [json.loads(line) for line in tiny_data["train"].read_text().splitlines()]
    acc = np.mean([p["label"] == r["label"] for p, r in zip(run.predict([r["text"] for r in train]), train)])
    assert acc > 0.6  # three balanced classes: chance is 1/3


def test_pet_from_the_cli(tiny_causal_lm, tiny_data, tmp_path, monkeypatch, capsys):  # noqa: F811
    path = tmp_path / "pet.yaml"
    path.write_text(yaml.safe_dump(pet_config(tiny_causal_lm, tiny_data, tmp_path / "run", CAUSAL_PROMPT, "lora")),
                    encoding="utf-8")

    def cli(*args):
        monkeypatch.setattr(sys, "argv", ["tuneforge", *map(str, args)])
        with pytest.raises(SystemExit) as info:
            main()
        return info.value.code or 0, capsys.readouterr()

    code, out = cli("train", path, "--quiet")
    assert code == 0, out.err
    code, out = cli("predict", tmp_path / "run", "--text", "late flight")
    assert code == 0, out.err
    assert json.loads(out.out.splitlines()[0])["label"] in LABELS
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(pet_config(tiny_causal_lm, tiny_data, tmp_path / "run2",
                                             {**CAUSAL_PROMPT, "template": "{answer} {text}"})), encoding="utf-8")
    code, out = cli("train", bad, "--quiet")
    assert code == 2 and "{answer} slot must come last" in out.err and "Traceback" not in out.err


def test_the_embedded_ids_a_forward_pass_reads_are_its_own_threads():
    """Forward passes run side by side on one model (``parallel="batches"``): the ids that peft's prompt tuning
    embeds, and the classifier reads back, are kept per thread, so one pass never reads another's batch."""
    import threading

    import torch

    from tuneforge.evaluation.inference import thread_state
    from tuneforge.prompting.pet import _remember_ids

    model = torch.nn.Linear(1, 1)
    embeddings = torch.nn.Embedding(4, 2)
    embeddings._tuneforge_owner = lambda: model
    mine, theirs = torch.tensor([[1, 2]]), torch.tensor([[3, 3], [2, 1]])
    _remember_ids(embeddings, (mine,), {})
    other = threading.Thread(target=_remember_ids, args=(embeddings, (theirs,), {}))
    other.start()
    other.join()
    assert thread_state(model)["embedded_ids"] is mine


def test_calibrate_is_refused_for_training(tiny_mlm, tiny_data, tmp_path):  # noqa: F811
    """PET trains and predicts with uncalibrated label scores: prompt.calibrate: true (copied from a zeroshot config)
    was ignored, while the run's prompt.json said "calibrate": true."""
    cfg = pet_config(tiny_mlm, tiny_data, tmp_path / "run", {**MASKED_PROMPT, "calibrate": True})
    with pytest.raises(TuneforgeError, match=r"prompt.calibrate: true: contextual calibration is for `tuneforge "
                                             r"zeroshot`.*Set prompt.calibrate=false"):
        tuneforge.train(cfg, progress=False)
    assert not (tmp_path / "run").exists()


def test_verbalizer_labels_and_pairs_are_checked_before_the_run_folder(tiny_mlm, tiny_data, tmp_path):  # noqa: F811
    """A verbalizer without a word for a label left a failed run folder, whose --resume advice repeated the error;
    a second text in the data with a template without {text_pair} trained without ever reading it."""
    prompt = {**MASKED_PROMPT, "verbalizer": {"negative": "bad", "positive": "good", "mixed": "okay"}}
    with pytest.raises(TuneforgeError, match=r"no word for \['neutral'\]. \['mixed'\] are not labels of the data"):
        tuneforge.train(pet_config(tiny_mlm, tiny_data, tmp_path / "run", prompt), progress=False)
    assert not (tmp_path / "run").exists()
    rows = [{**json.loads(line), "second": "the gate"} for line in tiny_data["train"].read_text().splitlines()]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = pet_config(tiny_mlm, tiny_data, tmp_path / "run", MASKED_PROMPT)
    cfg["data"] = {"train": str(pairs), "text_pair_column": "second", "max_length": 48}
    with pytest.raises(TuneforgeError, match=r"second text \(data.text_pair_column = second\), but prompt.template "
                                             r"has no \{text_pair\} slot"):
        tuneforge.train(cfg, progress=False)
    assert not (tmp_path / "run").exists()
