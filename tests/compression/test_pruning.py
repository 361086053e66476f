"""Pruning: head importance and physical head removal, magnitude pruning, and ``tuneforge prune`` end to end."""

from __future__ import annotations

import json
import sys

import pytest
import torch
import yaml

import tuneforge
from tuneforge.compression import heads as head_pruning
from tuneforge.compression import magnitude as magnitude_pruning
from tuneforge.compression.pruned_bert import PrunedBertForSequenceClassification
from tuneforge.data.records import Example
from tuneforge.errors import TuneforgeError
from tuneforge.methods.hf_folder import load_hf_folder
from tuneforge.training.batching import encode

TEXTS = ["the flight was late again", "great crew thanks", "my seat question"]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(make_tiny_config, tmp_path_factory):
    cfg = make_tiny_config(tmp_path_factory.mktemp("prune") / "run")
    cfg["train"].update(epochs=2)
    return tuneforge.train(cfg, progress=False)


@pytest.fixture(scope="module")
def lora_run(make_tiny_config, tmp_path_factory):
    cfg = make_tiny_config(tmp_path_factory.mktemp("prune-lora") / "run")
    cfg["method"] = {"name": "lora", "r": 2}
    cfg["train"].update(max_steps=2)
    return tuneforge.train(cfg, progress=False)


def fresh_model(run):
    return load_hf_folder(run.dir / "model").eval()


def logits(model, tokenizer, texts=TEXTS) -> torch.Tensor:
    with torch.no_grad():
        return model(**tokenizer(texts, padding=True, return_tensors="pt")).logits


def test_head_importance_is_finite_and_normalised_per_layer(run):
    model = fresh_model(run)
    data = encode([Example(text=t, label=label) for t, label in zip(TEXTS, run.labels)], run.tokenizer, run.labels,
                  32)
    scores = head_pruning.head_importance(model, data, batch_size=2, device=torch.device("cpu"), pad_id=0)
    assert scores.shape == (2, 2)  # tiny BERT: 2 layers of 2 heads
    assert torch.isfinite(scores).all() and (scores >= 0).all()
    assert torch.allclose(scores.norm(dim=1), torch.ones(2))
    assert not any(p.grad is not None for p in model.parameters())  # only the gates were differentiated


def test_choose_heads_takes_the_least_important_and_keeps_one_per_layer():
    scores = torch.tensor([[0.9, 0.1, 0.3], [0.2, 0.8, 0.05]])
    assert head_pruning.choose_heads(scores, 0.5, 1) == {0: [1], 1: [0, 2]}  # 0.05, 0.1, 0.2
    assert head_pruning.choose_heads(torch.tensor([[0.1, 0.2], [0.9, 0.95]]), 0.5, 1) == {0: [0], 1: [0]}
    with pytest.raises(TuneforgeError, match="at most"):
        head_pruning.choose_heads(scores, 0.9, 1)


def test_pruned_heads_shrink_the_model_which_reloads_with_transformers_alone(run, tmp_path):
    from transformers import AutoModelForSequenceClassification

    model = fresh_model(run)
    before = sum(p.numel() for p in model.parameters())
    head_pruning.prune_heads(model, {0: [1], 1: []})
    attention = model.bert.encoder.layer[0].attention
    assert attention.self.query.weight.shape == (16, 32)  # 1 of 2 heads of size 16 left
    assert attention.self.value.bias.shape == (16,) and attention.output.dense.weight.shape == (32, 16)
    assert model.bert.encoder.layer[1].attention.self.query.weight.shape == (32, 32)
    assert sum(p.numel() for p in model.parameters()) == before - 4 * 16 * 32 - 3 * 16
    expected = logits(model, run.tokenizer)
    assert torch.isfinite(expected).all()
    model.save_pretrained(tmp_path / "pruned")
    assert (tmp_path / "pruned" / "pruned_bert.py").exists()
    alone = AutoModelForSequenceClassification.from_pretrained(tmp_path / "pruned", trust_remote_code=True).eval()
    assert torch.allclose(logits(alone, run.tokenizer), expected, atol=1e-6)
    ours = PrunedBertForSequenceClassification.from_pretrained(tmp_path / "pruned").eval()
    assert torch.allclose(logits(ours, run.tokenizer), expected, atol=1e-6)


def test_pruning_a_head_equals_masking_it(run):
    """Removing a head computes what the full model computes with that head's output set to zero."""
    model = fresh_model(run)
    dense = model.bert.encoder.layer[1].attention.output.dense
    handle = dense.register_forward_pre_hook(lambda m, args: (args[0] * torch.tensor([0.0] * 16 + [1.0] * 16),))
    masked = logits(model, run.tokenizer)
    handle.remove()
    head_pruning.prune_heads(model, {1: [0]})
    assert torch.allclose(logits(model, run.tokenizer), masked, atol=1e-5)


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_magnitude_pruning_reaches_the_sparsity_and_is_permanent(run, scope, tmp_path):
    model = fresh_model(run)
    magnitude_pruning.magnitude_prune(model, 0.6, scope)
    assert magnitude_pruning.sparsity(model) == pytest.approx(0.6, abs=0.01)
    magnitude_pruning.make_permanent(model)
    assert not any(n.endswith("_orig") for n, _ in model.named_parameters())
    assert not any(m._forward_pre_hooks for m in model.modules())
    model.save_pretrained(tmp_path / "sparse")
    reloaded = load_hf_folder(tmp_path / "sparse")
    assert magnitude_pruning.sparsity(reloaded) == pytest.approx(0.6, abs=0.01)
    if scope == "layer":
        for module, _ in magnitude_pruning.prunable(reloaded):
            assert (module.weight == 0).float().mean().item() == pytest.approx(0.6, abs=0.01)


def cli(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    from tuneforge.cli.main import main

    monkeypatch.setattr(sys, "argv", ["tuneforge", *map(str, args)])
    with pytest.raises(SystemExit) as info:
        main()
    captured = capsys.readouterr()
    return info.value.code or 0, captured.out, captured.err


def test_prune_heads_and_fine_tune_through_the_cli(run, tmp_path, monkeypatch, capsys):
    out = tmp_path / "pruned"
    code, stdout, stderr = cli(monkeypatch, capsys, "prune", run.dir, out, "--heads", "0.5", "--finetune-epochs",
                               "1", "train.learning_rate=1e-3", "--quiet")
    assert code == 0, stderr
    assert "texts/s" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    for stage in ("before", "pruned", "after"):
        for key in ("parameters", "size_mb", "texts_per_second", "test_accuracy", "test_macro_f1"):
            assert f"{stage}.{key}" in metrics
    assert metrics["after.parameters"] < metrics["before.parameters"]
    assert metrics["after.size_mb"] < metrics["before.size_mb"]
    assert metrics["prune.heads_before"] == 4 and metrics["prune.heads_after"] == 2
    assert metrics["train.steps"] == 12  # 1 epoch of 96 examples in batches of 8
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["train"]["epochs"] == 1 and config["train"]["learning_rate"] == 1e-3
    assert yaml.safe_load((out / "prune.yaml").read_text())["heads"] == 0.5
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    assert "| texts per second |" in (out / "compression.md").read_text()
    with pytest.raises(TuneforgeError, match="already been pruned"):
        tuneforge.prune(out, tmp_path / "again", heads=0.25, progress=False)
    loaded = tuneforge.load(out)
    assert loaded.model.bert.encoder.layer[0].attention.self.query.out_features < 32 or \
        loaded.model.bert.encoder.layer[1].attention.self.query.out_features < 32
    assert len(loaded.predict(TEXTS)) == 3
    assert not list(tmp_path.glob(".pruned.tmp-*"))

    # The pruned run exports like any other: a Hugging Face folder carrying the pruned class, same outputs.
    from transformers import AutoModelForSequenceClassification

    exported = loaded.export(tmp_path / "exported", format="hf", parity_samples=8)
    assert (exported / "pruned_bert.py").exists()
    alone = AutoModelForSequenceClassification.from_pretrained(exported, trust_remote_code=True).eval()
    torch.testing.assert_close(logits(alone, loaded.tokenizer), logits(loaded.model, loaded.tokenizer),
                               atol=1e-5, rtol=0)


def test_magnitude_pruning_stays_sparse_through_the_fine_tune(run, tmp_path):
    pruned = tuneforge.prune(run.dir, tmp_path / "sparse", magnitude=0.5, finetune_epochs=1, progress=False)
    m = pruned.metrics
    assert m["prune.sparsity"] == pytest.approx(0.5, abs=0.01)
    assert magnitude_pruning.sparsity(pruned.model) == pytest.approx(0.5, abs=0.01)
    assert m["after.nonzero_parameters"] < 0.8 * m["before.nonzero_parameters"]
    assert m["after.parameters"] == m["before.parameters"]  # unstructured: stored dense


def test_a_lora_run_needs_merge(lora_run, tmp_path):
    with pytest.raises(TuneforgeError, match="--merge"):
        tuneforge.prune(lora_run.dir, tmp_path / "out", heads=0.5, progress=False)
    assert not (tmp_path / "out").exists()
    merged = tuneforge.prune(lora_run.dir, tmp_path / "out", heads=0.5, merge=True, finetune_epochs=0,
                             progress=False)
    assert merged.config.method.name == "full" and merged.metrics["prune.heads_after"] == 2


@pytest.mark.parametrize("args, message", [
    (["--heads", "1.5"], "between 0 and 1"),
    (["--magnitude", "0"], "between 0 and 1"),
    ([], "--heads FRACTION"),
    (["--heads", "0.5", "--magnitude", "0.5"], "one of them"),
    (["--heads", "0.5", "train.epoch=2"], 'Did you mean "epochs"'),
    # it trained 3 epochs while compression.md's column said "pruned + 1 epoch(s)"
    (["--heads", "0.5", "train.epochs=3"], "the fine-tune's epochs are --finetune-epochs N"),
    (["--heads", "0.5", "--scope", "layer"], "scope layer applies to magnitude pruning"),  # it was ignored
])
def test_bad_prune_input_is_a_clear_error(run, tmp_path, monkeypatch, capsys, args, message):
    code, _, stderr = cli(monkeypatch, capsys, "prune", run.dir, tmp_path / "out", *args, "--quiet")
    assert code == 2
    assert message in " ".join(stderr.split()) and "Traceback" not in stderr
    assert not (tmp_path / "out").exists()


def test_prune_never_touches_an_existing_folder_or_a_missing_run(run, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(TuneforgeError, match="not empty"):
        tuneforge.prune(run.dir, out, heads=0.5, progress=False)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    with pytest.raises(TuneforgeError, match="does not exist"):
        tuneforge.prune(tmp_path / "nope", tmp_path / "out", heads=0.5, progress=False)


def test_a_token_classification_run_is_refused_before_its_data_is_read(tmp_path, monkeypatch, capsys):
    """It blamed the run's own tagged data for lacking "text" and "label" fields."""
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "tasks"))
    from tiny_ner import tiny_ner_config

    ner = tuneforge.train(tiny_ner_config(tmp_path), progress=False)
    code, _, stderr = cli(monkeypatch, capsys, "prune", ner.dir, tmp_path / "out", "--magnitude", "0.5", "--quiet")
    assert code == 2 and "Traceback" not in stderr
    assert "task: token-classification; tuneforge prune works on text classification only" in " ".join(stderr.split())
    assert not (tmp_path / "out").exists()


def test_a_contrastive_run_is_refused_not_measured_as_another_model(make_tiny_config, tmp_path):
    """Its head reads the mean-pooled embedding, which the plain classifier prune measured and saved does not:
    "before" accuracy was not the run's own, and the pruned folder kept contrastive: in its config."""
    cfg = make_tiny_config(tmp_path / "run") | {"contrastive": {"iterations": 1, "batch_size": 16}}
    contrastive = tuneforge.train(cfg, progress=False)
    with pytest.raises(TuneforgeError, match=r"mean-pooled embedding \(contrastive:\); compression measures"):
        tuneforge.prune(contrastive.dir, tmp_path / "out", magnitude=0.5, finetune_epochs=0, progress=False)
    assert not (tmp_path / "out").exists()


def test_the_fine_tune_of_an_augmented_run_uses_its_augment_copies(make_tiny_config, tmp_path):
    """The pruned folder's config.yaml kept augment:, but the fine-tune trained on the plain examples only."""
    cfg = make_tiny_config(tmp_path / "run") | {"augment": {"copies": 1, "operations": ["swap"]}}
    cfg["train"].update(epochs=1)
    source = tuneforge.train(cfg, progress=False)
    pruned = tuneforge.prune(source.dir, tmp_path / "out", magnitude=0.5, finetune_epochs=1, progress=False)
    steps = [json.loads(line)["step"] for line in (pruned.dir / "log.jsonl").read_text().splitlines()]
    source_steps = [json.loads(line)["step"] for line in (source.dir / "log.jsonl").read_text().splitlines()]
    assert max(steps) == max(source_steps) > 96 // 8  # one epoch over the examples and their copies, as trained
