"""The training loop: resume, early stopping, accumulation, schedules, batching, failures."""

from __future__ import annotations

import json
import math
import random
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import tuneforge
from tuneforge.data import read_examples
from tuneforge.errors import TuneforgeError
from tuneforge.methods import build_method, registry
from tuneforge.training.batching import batch_order


def read_log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text(encoding="utf-8").splitlines()]


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    files = sorted((run_dir / "model").glob("*.safetensors"))
    assert files, f"no safetensors in {run_dir / 'model'}"
    return {f"{f.name}:{k}": v for f in files for k, v in load_file(str(f)).items()}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=0, msg=name)


def train_steps_logged(run_dir: Path) -> list[int]:
    return [r["step"] for r in read_log(run_dir) if r["type"] == "train"]


# --- resume ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["full", "lora"])
def test_resume_equals_uninterrupted(tiny_config, tmp_path, method):
    tiny_config["method"] = {"name": method}
    tiny_config["train"]["checkpoint_every"] = 2
    run_dir = Path(tiny_config["output_dir"])

    with pytest.raises(KeyboardInterrupt):
        tuneforge.train(tiny_config, progress=False, _stop_after=5)
    assert read_json(run_dir / "run.json")["status"] == "interrupted"
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["step-00000004"]
    assert not (run_dir / "model").exists()
    with pytest.raises(TuneforgeError, match=r"status: interrupted.*--resume"):
        tuneforge.load(run_dir)

    resumed = tuneforge.train(None, resume=run_dir, progress=False)
    assert resumed.dir == run_dir
    assert read_json(run_dir / "run.json")["status"] == "complete"
    assert not (run_dir / "checkpoints").exists()

    tiny_config["output_dir"] = str(tmp_path / "uninterrupted")
    tuneforge.train(tiny_config, progress=False)
    assert_same_weights(weights(run_dir), weights(tmp_path / "uninterrupted"))
    steps = train_steps_logged(run_dir)
    assert steps == sorted(set(steps)) == train_steps_logged(tmp_path / "uninterrupted")
    evals = [r["step"] for r in read_log(run_dir) if r["type"] == "eval"]
    assert evals == sorted(set(evals))


def test_resume_without_a_checkpoint_starts_over_with_a_clean_log(tiny_config):
    run_dir = Path(tiny_config["output_dir"])  # no checkpoint_every: nothing to resume from
    with pytest.raises(KeyboardInterrupt):
        tuneforge.train(tiny_config, progress=False, _stop_after=5)
    assert train_steps_logged(run_dir) == [2, 4]

    # a new run into the same output_dir: refused, with the way to continue this one
    with pytest.raises(TuneforgeError, match=re.escape(f"it holds an unfinished run (status: interrupted). "
                                                       f"Continue it with `tuneforge train --resume {run_dir}`")):
        tuneforge.train(tiny_config, progress=False)

    tuneforge.train(None, resume=run_dir, progress=False)
    steps = train_steps_logged(run_dir)
    assert len(steps) == len(set(steps)), f"log.jsonl repeats steps: {steps}"


# --- early stopping -------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=["full", "adalora"])
def early_stopped(request, make_tiny_config, tmp_path_factory):
    """adalora: its rank masks change every step after warmup; the best step's masks must come back too."""
    cfg = make_tiny_config(tmp_path_factory.mktemp("early") / "run")
    cfg["method"] = {"name": request.param}
    cfg["train"].update(eval_every=1, early_stopping_patience=1, metric="loss")
    tuneforge.train(cfg, progress=False)
    return Path(cfg["output_dir"])


def test_early_stopping_stops_and_restores_best_weights(early_stopped, tiny_data):
    metrics = read_json(early_stopped / "metrics.json")
    evals = [r for r in read_log(early_stopped) if r["type"] == "eval"]
    best = min(evals, key=lambda r: r["loss"])
    assert metrics["train.stopped_early"] is True
    assert metrics["train.steps"] < 24  # 2 epochs of 12 steps
    assert metrics["train.best_step"] == best["step"]
    assert metrics["train.steps"] == best["step"] + 1  # patience 1, an evaluation every step
    assert [r["step"] for r in evals] == list(range(1, metrics["train.steps"] + 1))

    # The saved model is the best evaluation's: evaluating it again gives that evaluation's numbers.
    run = tuneforge.load(early_stopped, precision="fp32")
    again = run.evaluate(read_examples(tiny_data["validation"]))
    assert again["loss"] == pytest.approx(best["loss"], abs=1e-6)
    assert again["accuracy"] == best["accuracy"]


def test_early_stopping_reports_validation_metrics_of_the_restored_weights(early_stopped):
    metrics = read_json(early_stopped / "metrics.json")
    evals = [r for r in read_log(early_stopped) if r["type"] == "eval"]
    best = next(r for r in evals if r["step"] == metrics["train.best_step"])
    reported = {k: metrics[f"validation.{k}"] for k in ("accuracy", "macro_f1", "loss")}
    assert reported == {k: best[k] for k in reported}, (
        f"metrics.json validation.* {reported} describe the last evaluation (step {evals[-1]['step']}), "
        f"not the restored best weights (step {best['step']})")


# --- gradient accumulation ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_bert_no_dropout(tiny_bert, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-bert-no-dropout")
    shutil.copytree(tiny_bert, folder, dirs_exist_ok=True)
    config = read_json(folder / "config.json")
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def test_gradient_accumulation_equals_a_larger_batch(tiny_config, tiny_bert_no_dropout, tmp_path):
    tiny_config["model"] = str(tiny_bert_no_dropout)
    # Without length grouping, batches of 4 taken in pairs are exactly the batches of 8.
    tiny_config["train"].update(group_by_length=False, epochs=1)
    runs = {}
    for batch_size, accumulation in [(8, 1), (4, 2)]:
        cfg = json.loads(json.dumps(tiny_config))
        cfg["train"].update(batch_size=batch_size, gradient_accumulation_steps=accumulation)
        cfg["output_dir"] = str(tmp_path / f"b{batch_size}x{accumulation}")
        runs[(batch_size, accumulation)] = tuneforge.train(cfg, progress=False).dir
    big, accumulated = runs[(8, 1)], runs[(4, 2)]
    steps = [read_json(run / "metrics.json")["train.steps"] for run in (big, accumulated)]
    assert steps == [12, 12]
    # The same loss at every step (a wrongly scaled micro-batch loss would show here, even where
    # Adam's scale invariance hides it in the weights) and the same weights up to float rounding.
    loss = {run: [r["loss"] for r in read_log(run) if r["type"] == "train"] for run in (big, accumulated)}
    assert loss[accumulated] == pytest.approx(loss[big], rel=1e-6)
    a, b = weights(big), weights(accumulated)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=2e-5, rtol=0, msg=name)


def test_gradient_accumulation_halves_the_optimizer_steps(tiny_config):
    tiny_config["train"].update(gradient_accumulation_steps=2, epochs=1)
    run = tuneforge.train(tiny_config, progress=False)
    assert run.metrics["train.steps"] == 6  # 96 examples / 8 per batch / 2 batches per step
    assert run.metrics["train.samples"] == 96


# --- schedules ------------------------------------------------------------------------------------

PEAK, WARMUP, TOTAL = 5e-3, 4, 16


@pytest.mark.parametrize("scheduler", ["linear", "cosine", "constant"])
def test_learning_rate_schedule(tiny_config, scheduler):
    tiny_config["train"].update(scheduler=scheduler, warmup=WARMUP, max_steps=TOTAL, log_every=1,
                                learning_rate=PEAK)
    run = tuneforge.train(tiny_config, progress=False)
    records = [r for r in read_log(run.dir) if r["type"] == "train"]
    assert [r["step"] for r in records] == list(range(1, TOTAL + 1))
    lr = {r["step"]: r["learning_rate"] for r in records}  # the rate after each optimizer step

    warm = [lr[s] for s in range(1, WARMUP + 1)]
    assert all(x < y for x, y in zip(warm, warm[1:])), f"warmup does not rise: {warm}"
    assert lr[1] < PEAK / 2
    assert lr[WARMUP] == pytest.approx(PEAK)
    decay = [lr[s] for s in range(WARMUP, TOTAL + 1)]
    span = TOTAL - WARMUP
    if scheduler == "constant":
        assert decay == pytest.approx([PEAK] * len(decay))
        return
    assert all(x > y for x, y in zip(decay, decay[1:])), f"{scheduler} does not decay: {decay}"
    assert lr[TOTAL] == pytest.approx(0.0, abs=1e-12)
    assert lr[WARMUP + span // 2] == pytest.approx(PEAK / 2)
    quarter = lr[WARMUP + span // 4]
    if scheduler == "linear":
        assert quarter == pytest.approx(0.75 * PEAK)
        steps = [x - y for x, y in zip(decay, decay[1:])]
        assert steps == pytest.approx([PEAK / span] * span)
    else:
        assert quarter == pytest.approx(PEAK * (1 + math.cos(math.pi / 4)) / 2)


# --- length grouping ------------------------------------------------------------------------------

_rng = random.Random(0)
LENGTHS = [_rng.randint(3, 120) for _ in range(1000)]


def padding(batches: list[list[int]]) -> int:
    return sum(max(LENGTHS[i] for i in b) * len(b) - sum(LENGTHS[i] for i in b) for b in batches)


@pytest.mark.parametrize("group_by_length", [True, False])
@pytest.mark.parametrize("shuffle", [True, False])
def test_batch_order_covers_every_index_once(group_by_length, shuffle):
    batches = batch_order(LENGTHS, 32, seed=0, shuffle=shuffle, group_by_length=group_by_length)
    assert sorted(i for b in batches for i in b) == list(range(len(LENGTHS)))
    assert all(1 <= len(b) <= 32 for b in batches)
    assert sum(len(b) < 32 for b in batches) <= 1


def test_length_grouping_cuts_padding():
    grouped = batch_order(LENGTHS, 32, seed=0, shuffle=True, group_by_length=True)
    plain = batch_order(LENGTHS, 32, seed=0, shuffle=True, group_by_length=False)
    assert padding(grouped) < 0.1 * padding(plain)


@pytest.mark.parametrize("group_by_length", [True, False])
def test_batch_order_is_deterministic_per_seed_and_differs_across_seeds(group_by_length):
    def order(seed):
        return batch_order(LENGTHS, 32, seed=seed, shuffle=True, group_by_length=group_by_length)

    assert order(0) == order(0)
    assert order(0) != order(1)


def test_grouped_batches_come_in_random_order():
    # Grouping must not feed the longest texts first every epoch.
    batches = batch_order(LENGTHS, 32, seed=0, shuffle=True, group_by_length=True)
    widths = [max(LENGTHS[i] for i in b) for b in batches]
    assert widths != sorted(widths) and widths != sorted(widths, reverse=True)


# --- failures -------------------------------------------------------------------------------------

def test_failed_save_leaves_no_model_and_marks_the_run_failed(tiny_config, monkeypatch):
    tiny_config["train"]["epochs"] = 1
    method_class = type(build_method(registry()["full"].config()))

    def broken_save(self, model, folder):
        (folder / "partial.bin").write_bytes(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(method_class, "save", broken_save)
    with pytest.raises(RuntimeError, match="disk full"):
        tuneforge.train(tiny_config, progress=False)
    run_dir = Path(tiny_config["output_dir"])
    status = read_json(run_dir / "run.json")
    assert status["status"] == "failed"
    assert "disk full" in status["error"]
    assert not (run_dir / "model").exists()
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".model")], "temporary folder left"
    with pytest.raises(TuneforgeError, match="holds no finished model"):
        tuneforge.load(run_dir)


@pytest.mark.parametrize("own", ["notes.txt", "config.yaml"])
def test_output_dir_that_is_not_empty_and_not_a_run(tiny_config, own):
    """It said to continue it with --resume, which cannot work in a folder of the user's own (config.yaml
    alone, a name a user's project may have, does not make a run folder: run.json does)."""
    run_dir = Path(tiny_config["output_dir"])
    run_dir.mkdir()
    (run_dir / own).write_text("keep me", encoding="utf-8")
    with pytest.raises(TuneforgeError) as caught:
        tuneforge.train(tiny_config, progress=False)
    assert str(caught.value) == (f"output_dir {run_dir} already exists and is not empty, and it is not a tuneforge "
                                 "run folder (no config.yaml and run.json in it), so there is no run in it to "
                                 "resume; nothing was written to it. Choose a new output_dir (a new or empty "
                                 "folder).")
    assert [p.name for p in run_dir.iterdir()] == [own]
    assert (run_dir / own).read_text(encoding="utf-8") == "keep me"


def test_output_dir_that_is_an_empty_folder_is_used(tiny_config):
    Path(tiny_config["output_dir"]).mkdir()
    tiny_config["train"]["max_steps"] = 1
    run = tuneforge.train(tiny_config, progress=False)
    assert (run.dir / "model").is_dir()
    # the same output_dir again: a finished run, which --resume refuses, so it is not offered
    before = (run.dir / "run.json").read_bytes()
    with pytest.raises(TuneforgeError, match=r"it holds a finished run \(its model/ folder exists\); nothing was "
                                             r"written to it. Choose a new output_dir") as caught:
        tuneforge.train(tiny_config, progress=False)
    assert "--resume" not in str(caught.value) and (run.dir / "run.json").read_bytes() == before


def test_output_dir_of_another_recipes_run_is_not_offered_resume(tiny_config):
    run_dir = Path(tiny_config["output_dir"])
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("name: zs\n", encoding="utf-8")
    (run_dir / "run.json").write_text('{"recipe": "zeroshot", "status": "complete"}', encoding="utf-8")
    with pytest.raises(TuneforgeError, match="it holds a tuneforge zeroshot run, which --resume cannot continue"):
        tuneforge.train(tiny_config, progress=False)


def test_output_dir_that_is_a_file(tiny_config):
    path = Path(tiny_config["output_dir"])
    path.write_text("not a folder", encoding="utf-8")
    # It said "already exists and is not empty ... continue it with --resume FILE".
    with pytest.raises(TuneforgeError, match="output_dir .* is a file; the run needs a folder") as caught:
        tuneforge.train(tiny_config, progress=False)
    assert "--resume" not in str(caught.value)
    assert path.read_text(encoding="utf-8") == "not a folder"
