"""The k-shot protocol from the CLI and the API: per-seed samples (exactly K per class, training split only),
whole-test evaluation, mean and std, --ensemble, any config (ordinary method, augmentation, contrastive), and
clear errors for bad input that leave nothing behind."""

from __future__ import annotations

import json
import statistics
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import tuneforge
from tuneforge.cli.main import main
from tuneforge.data.files import read_examples
from tuneforge.evaluation.metrics import classification_metrics

pytestmark = pytest.mark.usefixtures("one_thread")


def cli(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["tuneforge", *map(str, args)])
    with pytest.raises(SystemExit) as info:
        main()
    return info.value.code or 0, capsys.readouterr()


def write_config(cfg: dict, path) -> str:
    import yaml

    cfg = {k: v for k, v in cfg.items() if k != "output_dir"}
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def two_seeds(make_tiny_config, tmp_path_factory):
    """`tuneforge fewshot CONFIG --shots 3 --seeds 2 --ensemble` on the tiny data, from the CLI."""
    folder = tmp_path_factory.mktemp("fs")
    cfg = make_tiny_config(folder / "unused")
    cfg["train"] |= {"epochs": 3, "batch_size": 4}
    config = write_config(cfg, folder / "fewshot.yaml")
    mp = pytest.MonkeyPatch()
    out_dir = folder / "out"
    mp.setattr(sys, "argv", ["tuneforge", "fewshot", config, "train.learning_rate=3e-3", "--shots", "3",
                             "--seeds", "2", "--ensemble", "--output-dir", str(out_dir), "--quiet"])
    with pytest.raises(SystemExit) as info:
        main()
    mp.undo()
    assert (info.value.code or 0) == 0
    return out_dir


def test_samples_are_k_per_class_from_the_training_split(two_seeds, tiny_data):
    train = [json.loads(line) for line in tiny_data["train"].read_text().splitlines()]
    test_texts = {json.loads(line)["text"] for line in tiny_data["test"].read_text().splitlines()}
    samples = []
    for seed in (0, 1):
        rows = [json.loads(line) for line in (two_seeds / "data" / f"seed-{seed}.jsonl").read_text().splitlines()]
        assert Counter(r["label"] for r in rows) == {"negative": 3, "neutral": 3, "positive": 3}
        for r in rows:  # each example is the training example its id says
            assert train[r["id"]]["text"] == r["text"] and train[r["id"]]["label"] == r["label"]
        assert not {r["text"] for r in rows} & (test_texts - {t["text"] for t in train})
        samples.append({r["id"] for r in rows})
    assert samples[0] != samples[1]
    # each seed's run trained on its sample and was tested on the whole test split
    run = json.loads((two_seeds / "seed-1" / "run.json").read_text())
    assert run["data"]["train"] == 9 and run["data"]["test"] == 30


def test_summary_is_mean_and_std_of_the_seeds(two_seeds):
    report = json.loads((two_seeds / "fewshot.json").read_text())
    assert report["shots"] == 3 and report["seeds"] == [0, 1] and report["test_examples"] == 30
    accs = [r["accuracy"] for r in report["per_seed"]]
    for r in report["per_seed"]:  # the row is the seed run's own test metrics
        metrics = json.loads((two_seeds / f"seed-{r['seed']}" / "metrics.json").read_text())
        assert r["accuracy"] == metrics["test.accuracy"] and r["macro_f1"] == metrics["test.macro_f1"]
        assert r["wall_seconds"] > 0
    assert report["summary"]["accuracy"]["mean"] == pytest.approx(statistics.fmean(accs))
    assert report["summary"]["accuracy"]["std"] == pytest.approx(statistics.stdev(accs))
    assert "mean ± std" in (two_seeds / "summary.md").read_text()
    assert (two_seeds / "seeds.png").stat().st_size > 1000


def test_the_folder_itself_is_no_run_and_says_which_to_give(two_seeds, monkeypatch, capsys):
    """tuneforge.load(result.dir) / ensemble / predict on the few-shot folder said 'not a run folder (it has no
    run.json, config.yaml or model/)', though it has a config.yaml."""
    with pytest.raises(tuneforge.TuneforgeError, match=r"few-shot folder \(tuneforge fewshot\) that holds one run "
                                                       r"per seed \(seed-0, seed-1\)"):
        tuneforge.load(two_seeds)
    code, io = cli(monkeypatch, capsys, "ensemble", two_seeds, two_seeds / "seed-0")
    assert code == 2 and f"tuneforge ensemble {two_seeds}/seed-*" in io.err


def test_ensemble_averages_the_seeds_probabilities(two_seeds, tiny_data):
    test = read_examples(tiny_data["test"])
    runs = [tuneforge.load(two_seeds / f"seed-{s}") for s in (0, 1)]
    labels = runs[0].labels
    probs = sum(r.predict_proba(test)[:, [r.labels.index(name) for name in labels]] for r in runs)
    expected = classification_metrics([labels.index(e.label) for e in test], np.argmax(probs, -1).tolist(), labels)
    ensemble = json.loads((two_seeds / "fewshot.json").read_text())["ensemble"]
    assert ensemble["seeds"] == 2 and ensemble["accuracy"] == pytest.approx(expected["accuracy"])


def test_api_with_augmentation_and_contrastive(make_tiny_config, tmp_path):
    cfg = make_tiny_config(tmp_path / "unused")
    cfg.pop("output_dir")
    cfg["augment"] = {"copies": 2, "operations": ["swap", "delete"]}
    cfg["contrastive"] = {"iterations": 2, "batch_size": 8, "learning_rate": 1e-3, "head": "logistic"}
    result = tuneforge.fewshot(cfg, ["train.epochs=1"], shots=2, seeds=2, output_dir=tmp_path / "out",
                               progress=False)
    assert [r["seed"] for r in result.seeds] == [0, 1] and len(result.runs) == 2
    run = json.loads((result.runs[0] / "run.json").read_text())
    assert 6 < run["data"]["train"] <= 6 * 3  # 6 sampled examples plus their edited copies
    assert json.loads((result.runs[0] / "metrics.json").read_text())["train.pairs"] == 2 * 2 * run["data"]["train"]
    assert result.ensemble is None and "2 seeds" in result.markdown


def test_bad_input(make_tiny_config, tmp_path, monkeypatch, capsys):
    cfg = make_tiny_config(tmp_path / "unused")
    config = write_config(cfg, tmp_path / "c.yaml")
    code, io = cli(monkeypatch, capsys, "fewshot", config, "--shots", "40", "--seeds", "2",
                   "--output-dir", tmp_path / "out")
    assert code == 2 and "--shots 32 or fewer" in io.err and "Traceback" not in io.err
    assert not (tmp_path / "out").exists()  # nothing written before the input was checked
    code, io = cli(monkeypatch, capsys, "fewshot", config, "--seeds", "0")
    assert code == 2 and "at least one seed" in io.err
    code, io = cli(monkeypatch, capsys, "fewshot", config, "contrastive.iteratons=2")
    assert code == 2 and "iterations" in io.err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    code, io = cli(monkeypatch, capsys, "fewshot", config, "--output-dir", tmp_path / "full", "--shots", "2")
    assert code == 2 and "not empty" in io.err and (tmp_path / "full" / "keep.txt").read_text() == "mine"
    code, io = cli(monkeypatch, capsys, "fewshot", "train.epochs=1")
    assert code == 2 and "config file comes first" in io.err


def test_help(monkeypatch, capsys):
    code, io = cli(monkeypatch, capsys, "fewshot", "--help")
    assert code == 0 and "--shots" in io.out and "--ensemble" in io.out


def test_pet_prompt_config(make_tiny_config, tmp_path):
    """A PET config through the protocol: each seed's run trains through the template and reloads."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "prompting"))  # the tiny masked LM of the PET tests
    from tiny_lms import build_tiny_mlm

    cfg = make_tiny_config(tmp_path / "unused")
    cfg.pop("output_dir")
    cfg["model"] = str(build_tiny_mlm(tmp_path / "mlm"))
    cfg["prompt"] = {"template": "{text}. it was {answer}.", "verbalizer": {"negative": "bad", "neutral": "okay",
                                                                          "positive": "good"}}
    result = tuneforge.fewshot(cfg, ["train.epochs=1"], shots=2, seeds=2, output_dir=tmp_path / "out",
                               progress=False)
    assert len(result.seeds) == 2
    for row, folder in zip(result.seeds, result.runs):
        assert json.loads((folder / "prompt.json").read_text())["training"] == "pet"
        run = tuneforge.load(folder)
        test = read_examples(result.dir / "data" / "test.jsonl")
        assert run.evaluate(test)["accuracy"] == pytest.approx(row["accuracy"])


def test_max_train_samples_does_not_shrink_the_pool(make_tiny_config, tmp_path, capsys):
    """A config's data.max_train_samples (configs/airline-pet.yaml has 48) capped the pool the k-shot sample was
    drawn from, so `--shots 8` failed with '"positive" has 7' on a training split with thousands of each."""
    cfg = make_tiny_config(tmp_path / "unused")
    cfg.pop("output_dir")
    cfg["data"] |= {"max_train_samples": 6, "max_eval_samples": 6}  # 2 of each class of the 96
    result = tuneforge.fewshot(cfg, ["train.epochs=1"], shots=5, seeds=1, output_dir=tmp_path / "out",
                               progress=False)
    rows = [json.loads(line) for line in (result.dir / "data" / "seed-0.jsonl").read_text().splitlines()]
    assert Counter(r["label"] for r in rows) == {"negative": 5, "neutral": 5, "positive": 5}
    assert json.loads((result.dir / "fewshot.json").read_text())["train_split_examples"] == 96
    assert "data.max_train_samples=6 and data.max_eval_samples=6 ignored" in capsys.readouterr().err


def test_seeds_and_shots_are_counts(make_tiny_config, tmp_path):
    """tuneforge.fewshot(cfg, seeds=[100, 101]) failed with "TypeError: '<' not supported between instances of
    'list' and 'int'", shots=2.5 with "can't multiply sequence by non-int of type 'float'"."""
    cfg = make_tiny_config(tmp_path / "unused")
    with pytest.raises(tuneforge.TuneforgeError) as info:
        tuneforge.fewshot(cfg, seeds=[100, 101, 102], shots=2.5, output_dir=tmp_path / "out")
    message = str(info.value)
    assert "seeds=[100, 101, 102]: give how many seeds to run, an integer" in message
    assert "seeds=3 with the override train.seed=100" in message
    assert "shots=2.5: give how many examples of each class to draw, an integer" in message
    assert not (tmp_path / "out").exists()


def test_a_config_every_seed_refuses_leaves_no_folder(make_tiny_config, tmp_path):
    """Errors that only train() finds (here contrastive: with TensorBoard) left config.yaml, data/ and a failed
    seed-<s>/ behind, and the same --output-dir was then refused as 'not empty'."""
    cfg = make_tiny_config(tmp_path / "unused")
    cfg["contrastive"] = {"iterations": 1}
    cfg["tracking"] = {"tensorboard": True}
    with pytest.raises(tuneforge.TuneforgeError, match="does not report to TensorBoard"):
        tuneforge.fewshot(cfg, shots=2, seeds=2, output_dir=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(tuneforge.TuneforgeError, match="does not report to TensorBoard"):
        tuneforge.fewshot(cfg, shots=2, seeds=2, output_dir=tmp_path / "empty", progress=False)
    assert (tmp_path / "empty").is_dir() and not any((tmp_path / "empty").iterdir())


def test_an_output_dir_that_is_or_sits_in_a_file(make_tiny_config, tmp_path, monkeypatch, capsys):
    """--output-dir inside a file was a NotADirectoryError traceback; a file was 'already exists and is not empty'."""
    config = write_config(make_tiny_config(tmp_path / "unused"), tmp_path / "c.yaml")
    (tmp_path / "notes.txt").write_text("mine")
    code, io = cli(monkeypatch, capsys, "fewshot", config, "--shots", "2", "--output-dir", tmp_path / "notes.txt" / "x")
    assert code == 2 and "notes.txt is a file, so no folder can be made inside it" in io.err
    assert "Traceback" not in io.err
    code, io = cli(monkeypatch, capsys, "fewshot", config, "--shots", "2", "--output-dir", tmp_path / "notes.txt")
    assert code == 2 and "notes.txt is a file, not a folder" in io.err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_training_file_without_a_validation_file_is_all_in_the_pool(make_tiny_config, tiny_data, tmp_path):
    """8 examples per class and a test file: --shots 8 said '"negative" has 7', because 10% of data.train was split
    off as a validation set that the protocol never uses (each seed validates on its own sample)."""
    from tiny_fixtures import make_examples, write_jsonl

    train = write_jsonl(tmp_path / "train.jsonl", make_examples(24, seed=7))  # 8 of each class
    cfg = make_tiny_config(tmp_path / "unused")
    cfg.pop("output_dir")
    cfg["data"] = {"train": str(train), "test": str(tiny_data["test"]), "max_length": 32}
    result = tuneforge.fewshot(cfg, ["train.epochs=1"], shots=8, seeds=1, output_dir=tmp_path / "out", progress=False)
    rows = [json.loads(line) for line in (result.dir / "data" / "seed-0.jsonl").read_text().splitlines()]
    assert sorted(r["text"] for r in rows) == sorted(r["text"] for r in map(json.loads, train.read_text().splitlines()))
    del cfg["data"]["test"]  # no test file: the held-out share is the test split, and the error says so
    with pytest.raises(tuneforge.TuneforgeError, match=r"has 7.*data.validation_fraction=0.1 held out as the test "
                                                       r"split, since the config gives no data.test"):
        tuneforge.fewshot(cfg, shots=8, seeds=1, output_dir=tmp_path / "out2", progress=False)
