"""Continual training end to end on the tiny BERT: run A, then task B with ``continual:`` (plain continuation,
rehearsal, EWC), the adapter-per-task route, the CLI, and the mistakes a user makes."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import tuneforge
import tuneforge.continual.recipe as continual_recipe
import tuneforge.recipes.train as train_recipe
from tiny_fixtures import make_examples, write_jsonl
from tuneforge.cli.main import main
from tuneforge.config import TrainConfig, load_config
from tuneforge.data import read_examples
from tuneforge.data.source import load_splits
from tuneforge.errors import TuneforgeError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def b_data(tmp_path_factory) -> dict[str, str]:
    """Task B: the same labels, other texts (other seeds)."""
    folder = tmp_path_factory.mktemp("task-b")
    return {name: str(write_jsonl(folder / f"{name}.jsonl", make_examples(n, seed=seed)))
            for name, n, seed in (("train", 60, 41), ("validation", 15, 42), ("test", 21, 43))}


@pytest.fixture(scope="module")
def run_a(make_tiny_config, tmp_path_factory) -> Path:
    """Task A: full fine-tuning on 48 of the 96 tiny training examples (A's training split is that sample)."""
    cfg = make_tiny_config(tmp_path_factory.mktemp("a") / "run")
    cfg["name"] = "task-a"
    cfg["data"]["max_train_samples"] = 48
    return tuneforge.train(cfg, progress=False).dir


def config_b(make_tiny_config, b_data, out: Path, previous: Path | None, **continual) -> dict:
    cfg = make_tiny_config(out)
    cfg["name"] = "task-b"
    cfg["data"] = {**b_data, "max_length": 32}
    cfg["train"].update(epochs=1)
    if previous is not None:
        cfg["continual"] = {"previous": str(previous), **continual}
    return cfg


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "model" / "model.safetensors")


@pytest.fixture(scope="module")
def run_b_plain(make_tiny_config, b_data, run_a, tmp_path_factory) -> Path:
    return tuneforge.train(config_b(make_tiny_config, b_data, tmp_path_factory.mktemp("b") / "run", run_a),
                           progress=False).dir


def test_plain_continuation_starts_from_run_a_weights(make_tiny_config, b_data, run_a, tmp_path, monkeypatch):
    seen = []
    real_fit = train_recipe.fit

    def spy(model, *args, **kwargs):
        seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return real_fit(model, *args, **kwargs)

    monkeypatch.setattr(train_recipe, "fit", spy)
    cfg = config_b(make_tiny_config, b_data, tmp_path / "b", run_a)
    cfg["train"]["max_steps"] = 1
    tuneforge.train(cfg, progress=False)
    scratch = config_b(make_tiny_config, b_data, tmp_path / "scratch", None)
    scratch["train"]["max_steps"] = 1
    tuneforge.train(scratch, progress=False)
    a = weights(run_a)
    for name, tensor in a.items():
        torch.testing.assert_close(seen[0][name], tensor, rtol=0, atol=0)  # B begins exactly where A ended
    assert not torch.equal(seen[1]["classifier.weight"], a["classifier.weight"])  # without continual: a new head


def test_continued_run_reports_a_before_and_after_and_predicts_alone(run_a, run_b_plain, make_tiny_config):
    metrics = json.loads((run_b_plain / "metrics.json").read_text())
    info = json.loads((run_b_plain / "continual.json").read_text())
    a_metrics = json.loads((run_a / "metrics.json").read_text())
    assert metrics["continual.previous_test_before.accuracy"] == a_metrics["test.accuracy"]
    assert info["previous"] == str(run_a.resolve()) and info["rehearsal"] is None and info["ewc"] is None
    # The after-score is B's own model on A's test split; the run folder loads and predicts without run A.
    a_cfg = load_config(TrainConfig, path=run_a / "config.yaml")
    moved = run_a.parent / "moved-away"
    shutil.move(run_a, moved)
    try:
        run = tuneforge.load(run_b_plain, precision="fp32")
        assert run.labels == ["negative", "neutral", "positive"]
        scores = run.evaluate(read_examples(a_cfg.data.test))
    finally:
        shutil.move(moved, run_a)
    assert metrics["continual.previous_test.accuracy"] == pytest.approx(scores["accuracy"])
    assert info["previous_test_after"]["accuracy"] == metrics["continual.previous_test.accuracy"]


def test_rehearsal_adds_a_seeded_sample_of_a_training_split_only(make_tiny_config, b_data, run_a, tmp_path):
    a_cfg = load_config(TrainConfig, path=run_a / "config.yaml")
    a_train = {e.text for e in load_splits(a_cfg.data, a_cfg.train.seed).train}  # the 48 A trained on
    a_held_out = {e.text for e in read_examples(a_cfg.data.train)} - a_train
    cfg = load_config(TrainConfig, data=config_b(make_tiny_config, b_data, tmp_path / "b", run_a,
                                                 rehearsal={"samples": 20}))
    b_splits = load_splits(cfg.data, cfg.train.seed)

    def drawn(config):
        splits, continuation = continual_recipe.start(config, copy.deepcopy(b_splits))
        assert continuation.rehearsed == 20 and len(splits.train) == len(b_splits.train) + 20
        assert [e.text for e in splits.train[:len(b_splits.train)]] == [e.text for e in b_splits.train]
        return [e.text for e in splits.train[len(b_splits.train):]]

    first = drawn(cfg)
    assert set(first) <= a_train and not set(first) & a_held_out
    assert drawn(cfg) == first
    assert drawn(cfg.model_copy(update={"train": cfg.train.model_copy(update={"seed": 7})})) != first
    run = tuneforge.train(cfg, progress=False)
    info = json.loads((run.dir / "run.json").read_text())
    assert info["data"]["train"] == len(b_splits.train) + 20
    assert json.loads((run.dir / "continual.json").read_text())["rehearsal"] == {"samples": 20}


def test_ewc_fisher_comes_from_a_data_and_holds_the_weights_near_a(make_tiny_config, b_data, run_a, run_b_plain,
                                                                    tmp_path, monkeypatch):
    seen = []
    real = continual_recipe.fisher_diagonal

    fishers = []

    def spy(model, data, **kwargs):
        seen.append([list(ids) for ids in data.input_ids])
        fishers.append(real(model, data, **kwargs))
        return fishers[-1]

    monkeypatch.setattr(continual_recipe, "fisher_diagonal", spy)
    cfg = config_b(make_tiny_config, b_data, tmp_path / "b", run_a, ewc={"strength": 1e4, "fisher_samples": 16})
    run = tuneforge.train(cfg, progress=False)
    tokenizer = run.tokenizer
    a_cfg = load_config(TrainConfig, path=run_a / "config.yaml")
    a_ids = {tuple(tokenizer(e.text, truncation=True, max_length=32)["input_ids"])
             for e in load_splits(a_cfg.data, a_cfg.train.seed).train}
    assert len(seen) == 1 and len(seen[0]) == 16
    assert all(tuple(ids) in a_ids for ids in seen[0])
    info = json.loads((run.dir / "continual.json").read_text())["ewc"]
    assert info["strength"] == 1e4 and info["fisher_mean"] > 0 and info["fisher_samples"] == 16
    # What EWC minimises: the Fisher-weighted distance to A's weights. (The plain distance need not shrink: AdamW
    # moves weights with little Fisher by about the learning rate per step whatever the penalty.)
    a, fisher = weights(run_a), fishers[0]

    def weighted(run_dir: Path) -> float:
        b = weights(run_dir)
        return sum(float((f * (b[k] - a[k]) ** 2).sum()) for k, f in fisher.items() if k in a)

    assert weighted(run.dir) < 0.25 * weighted(run_b_plain)


def test_adapter_per_task_keeps_a_predictions_bit_identical(make_tiny_config, b_data, tmp_path):
    cfg_a = make_tiny_config(tmp_path / "a")
    cfg_a["method"] = {"name": "lora"}
    run_a = tuneforge.train(cfg_a, progress=False).dir
    texts = [e.text for e in read_examples(b_data["test"])] + [e.text for e in read_examples(cfg_a["data"]["test"])]
    before = tuneforge.load(run_a, precision="fp32").predict_proba(texts)
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (run_a / "model").iterdir() if p.is_file()}

    cfg_b = config_b(make_tiny_config, b_data, tmp_path / "b", None)
    cfg_b["method"] = {"name": "lora"}
    run_b = tuneforge.train(cfg_b, progress=False).dir
    both = tuneforge.load({"A": run_a, "B": run_b}, precision="fp32")
    assert np.array_equal(both.predict_proba(texts, adapter="A"), before)
    assert np.array_equal(tuneforge.load(run_a, precision="fp32").predict_proba(texts), before)
    assert not np.array_equal(both.predict_proba(texts, adapter="B"), before)
    assert files == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (run_a / "model").iterdir()
                     if p.is_file()}


def test_cli_continues_a_run_with_an_override(make_tiny_config, b_data, run_a, tmp_path, monkeypatch, capsys):
    import yaml

    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(config_b(make_tiny_config, b_data, tmp_path / "b", None)), encoding="utf-8")

    def cli(*args):
        monkeypatch.setattr(sys, "argv", ["tuneforge", *map(str, args)])
        with pytest.raises(SystemExit) as info:
            main()
        return info.value.code or 0, capsys.readouterr()

    code, _ = cli("train", path, f"continual.previous={run_a}", "continual.rehearsal.samples=8", "--quiet")
    assert code == 0
    assert json.loads((tmp_path / "b" / "continual.json").read_text())["rehearsal"] == {"samples": 8}
    code, out = cli("train", path, f"continual.previous={tmp_path / 'nowhere'}", f"output_dir={tmp_path / 'c'}")
    assert code == 2 and "continual.previous" in out.err and "Traceback" not in out.err
    assert not (tmp_path / "c").exists()


# --- mistakes -----------------------------------------------------------------------------------------------------

def expect_error(cfg: dict, match: str) -> None:
    with pytest.raises(TuneforgeError, match=match):
        tuneforge.train(cfg, progress=False)
    assert not Path(cfg["output_dir"]).exists(), "the error comes before the run folder is created"


def test_missing_and_unfinished_previous_runs(make_tiny_config, b_data, run_a, tmp_path):
    expect_error(config_b(make_tiny_config, b_data, tmp_path / "b", tmp_path / "nowhere"),
                 r"continual.previous = .*nowhere: no such folder")
    unfinished = tmp_path / "unfinished"
    shutil.copytree(run_a, unfinished, ignore=shutil.ignore_patterns("model"))
    (unfinished / "run.json").write_text(json.dumps({"status": "interrupted"}))
    expect_error(config_b(make_tiny_config, b_data, tmp_path / "b", unfinished),
                 r"did not finish \(status: interrupted.*--resume")


def test_folders_of_other_commands_say_what_to_give(make_tiny_config, b_data, run_a, tmp_path):
    """A few-shot, tune or zero-shot folder as continual.previous was 'run A did not finish (status: complete; no
    model/ folder) ... Finish it first: tuneforge train --resume DIR'."""
    fewshot = tmp_path / "fs-3shot"
    shutil.copytree(run_a, fewshot / "seed-1")
    shutil.copy(run_a / "config.yaml", fewshot / "config.yaml")
    (fewshot / "fewshot.json").write_text("{}")
    expect_error(config_b(make_tiny_config, b_data, tmp_path / "b", fewshot),
                 r"is a few-shot folder \(tuneforge fewshot\) that holds one run per seed \(seed-1\): give one of "
                 r"them \(e.g. .*fs-3shot/seed-1\)")
    tune = tmp_path / "tune"
    tune.mkdir()
    (tune / "study.db").write_bytes(b"")
    shutil.copy(run_a / "config.yaml", tune / "config.yaml")
    expect_error(config_b(make_tiny_config, b_data, tmp_path / "b", tune), r"is a tune folder .*best.yaml")
    zeroshot = tmp_path / "zs"
    zeroshot.mkdir()
    shutil.copy(run_a / "config.yaml", zeroshot / "config.yaml")
    (zeroshot / "run.json").write_text(json.dumps({"status": "complete", "recipe": "zeroshot"}))
    expect_error(config_b(make_tiny_config, b_data, tmp_path / "b", zeroshot),
                 r"run A is a zero-shot run .*no weights to continue from")


def test_other_backbone_other_labels_and_frozen_methods_are_refused(make_tiny_config, b_data, run_a, tiny_bert,
                                                                    tmp_path):
    other = shutil.copytree(tiny_bert, tmp_path / "other-bert")
    cfg = config_b(make_tiny_config, b_data, tmp_path / "b", run_a)
    cfg["model"] = str(other)
    expect_error(cfg, r"run A was trained on model: .*set model=")

    rows = make_examples(30, seed=5)
    for row in rows:
        row["label"] = {"neutral": "question"}.get(row["label"], row["label"])
    cfg = config_b(make_tiny_config, b_data, tmp_path / "b", run_a)
    cfg["data"] = {"train": str(write_jsonl(tmp_path / "other-labels.jsonl", rows)), "max_length": 32}
    expect_error(cfg, r"labels \['question'\] are not among run A's labels.*adapter-per-task")

    cfg = config_b(make_tiny_config, b_data, tmp_path / "b", run_a)
    cfg["method"] = {"name": "lora"}
    expect_error(cfg, r"keeps the backbone frozen.*tuneforge.load\(\[A, B\]\)")


def test_b_with_a_subset_of_a_labels_keeps_a_head_and_label_order(make_tiny_config, run_a, tmp_path):
    rows = [r for r in make_examples(40, seed=9) if r["label"] != "neutral"]
    cfg = config_b(make_tiny_config, {}, tmp_path / "b", run_a)
    cfg["data"] = {"train": str(write_jsonl(tmp_path / "two.jsonl", rows)), "max_length": 32}
    cfg["train"]["max_steps"] = 1
    run = tuneforge.train(cfg, progress=False)
    assert run.labels == ["negative", "neutral", "positive"]
    assert json.loads((run.dir / "labels.json").read_text()) == run.labels


def test_rehearsal_without_a_data_names_the_files_and_the_fix(make_tiny_config, b_data, tiny_data, tmp_path):
    copied = {name: shutil.copy(tiny_data[name], tmp_path / f"a-{name}.jsonl") for name in tiny_data}
    cfg_a = make_tiny_config(tmp_path / "a")
    cfg_a["data"].update({name: str(path) for name, path in copied.items()})
    cfg_a["train"]["max_steps"] = 1
    run_a = tuneforge.train(cfg_a, progress=False).dir
    Path(copied["train"]).unlink()
    expect_error(config_b(make_tiny_config, b_data, tmp_path / "b", run_a, rehearsal={"samples": 5}),
                 r"data.train: .*a-train.jsonl.*continual.rehearsal=null")


def test_config_keys_are_strict():
    def config(**continual) -> dict:
        return {"data": {"dataset": "airline-sentiment"}, "continual": {"previous": "runs/a", **continual}}

    with pytest.raises(TuneforgeError, match=r'unknown key "continual.rehersal". Did you mean "rehearsal"'):
        load_config(TrainConfig, data=config(rehersal={"samples": 5}))
    missing = config(ewc={"strength": 1.0})
    del missing["continual"]["previous"]
    with pytest.raises(TuneforgeError, match=r'"continual.previous" is required'):
        load_config(TrainConfig, data=missing)
    with pytest.raises(TuneforgeError, match=r"continual.ewc.strength"):
        load_config(TrainConfig, data=config(), overrides=["continual.ewc.strength=-1"])
    with pytest.raises(TuneforgeError, match=r"does not combine with prompt"):
        load_config(TrainConfig, data={**config(), "contrastive": {}})
    assert load_config(TrainConfig, data=config(ewc={})).continual.ewc.fisher_samples == 200
