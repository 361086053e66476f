"""Token classification end to end on a tiny random BERT: every supported method (full, lora, adapter)
through train -> load -> predict (entity spans with character offsets) -> eval, from the Python API and the
command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

import tuneforge

sys.path.insert(0, str(Path(__file__).parent))
from tiny_ner import build_tiny_ner_bert, chinese_sentences, english_sentences, write_jsonl  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
# (learning rate, epochs, the test F1 it must beat). On a random tiny backbone the frozen-base methods need more
# steps; bottleneck adapters on this random encoder plateau near 0.64 (they learn LOC and ORG but few multi-word
# names) whatever their size or non-linearity, so their bar is lower. Untrained, F1 is about 0.
METHODS = {"full": (5e-3, 6, 0.8), "lora": (3e-2, 30, 0.8), "adapter": (3e-2, 15, 0.5)}


@pytest.fixture()
def cli(monkeypatch, capsys):
    """``cli(*args) -> (exit code, stdout, stderr)`` through ``tuneforge.cli.main.main`` in this process."""
    from tuneforge.cli.main import main

    def invoke(*args):
        monkeypatch.setattr(sys, "argv", ["tuneforge", *map(str, args)])
        with pytest.raises(SystemExit) as info:
            main()
        captured = capsys.readouterr()
        return (0 if info.value.code is None else info.value.code), captured.out, captured.err

    return invoke


def write_conll(path: Path, rows: list[dict]) -> Path:
    lines = []
    for row in rows:
        lines += [f"{word} {tag}" for word, tag in zip(row["tokens"], row["tags"])] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def ner_data(tmp_path_factory) -> dict[str, Path]:
    """Training data in both JSONL forms (tokens + tags, text + entities); the test file in CoNLL."""
    folder = tmp_path_factory.mktemp("ner-data")
    return {"model": build_tiny_ner_bert(folder / "bert"),
            "train": write_jsonl(folder / "train.jsonl", english_sentences(160, seed=1) + chinese_sentences(80, 2)),
            "validation": write_jsonl(folder / "validation.jsonl", english_sentences(24, seed=3)),
            "test": write_conll(folder / "test.conll", english_sentences(40, seed=4))}


def ner_config(data: dict[str, Path], method: str, output_dir: Path) -> dict:
    return {"name": f"ner-{method}", "model": str(data["model"]), "task": "token-classification",
            "data": {"train": str(data["train"]), "validation": str(data["validation"]), "test": str(data["test"]),
                     "max_length": 32},
            "method": {"name": method},
            "train": {"epochs": METHODS[method][1], "batch_size": 8, "learning_rate": METHODS[method][0],
                      "precision": "fp32", "seed": 0, "log_every": 5},
            "output_dir": str(output_dir)}


@pytest.fixture(scope="module", params=sorted(METHODS))
def trained(request, ner_data, tmp_path_factory):
    method = request.param
    run = tuneforge.train(ner_config(ner_data, method, tmp_path_factory.mktemp(f"ner-{method}") / "run"),
                          progress=False)
    return method, run


def test_metrics_json_has_entity_scores_overall_and_per_type(trained):
    method, run = trained
    metrics = json.loads((run.dir / "metrics.json").read_text(encoding="utf-8"))
    assert set(metrics["test.per_type"]) == {"PER", "LOC", "ORG"}
    for scores in metrics["test.per_type"].values():
        assert set(scores) == {"precision", "recall", "f1", "support"} and scores["support"] > 0
    assert metrics["test.entities"] == sum(s["support"] for s in metrics["test.per_type"].values())
    # The synthetic entities follow from the words: every method must learn them.
    assert metrics["test.f1"] > METHODS[method][2], (method, metrics["test.f1"], metrics["test.per_type"])
    assert metrics["test.per_type"]["LOC"]["f1"] > 0.7, metrics["test.per_type"]
    assert json.loads((run.dir / "model" / "labels.json").read_text()) == [
        "O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert (run.dir / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_the_model_folder_is_the_methods_own_format(trained):
    method, run = trained
    folder = run.dir / "model"
    if method == "full":
        assert json.loads((folder / "config.json").read_text())["architectures"] == ["BertForTokenClassification"]
    elif method == "lora":
        assert json.loads((folder / "adapter_config.json").read_text())["task_type"] == "TOKEN_CLS"
    else:
        assert (folder / "adapter_model.safetensors").is_file()
        assert json.loads((folder / "adapter_config.json").read_text())["method"] == "adapter"


def test_predict_gives_entity_spans_with_character_offsets(trained):
    method, run = trained
    loaded = tuneforge.load(run.dir)
    texts = ["today john smith visited new york .", "the red cross said  paris", "他在北京说"]
    predictions = loaded.predict(texts)
    assert len(predictions) == 3
    for text, prediction in zip(texts, predictions):
        for entity in prediction["entities"]:
            assert set(entity) == {"text", "type", "start", "end", "score"}
            assert text[entity["start"]:entity["end"]] == entity["text"]
            assert entity["type"] in {"PER", "LOC", "ORG"} and 0 < entity["score"] <= 1
    found = {(e["text"], e["type"]) for e in predictions[0]["entities"]}
    if method != "adapter":  # (see METHODS)
        assert {("john smith", "PER"), ("new york", "LOC")} <= found, (method, predictions[0])
    assert ("paris", "LOC") in {(e["text"], e["type"]) for e in predictions[1]["entities"]}
    assert predictions[1]["entities"][-1]["start"] == texts[1].index("paris")  # the double space is kept


def test_loaded_run_scores_the_test_file_as_training_did(trained):
    """The saved model folder round-trips: eval of the loaded run equals the in-memory test scores."""
    _, run = trained
    metrics = tuneforge.load(run.dir).evaluate_file(run.config.data.test)
    for key in ("precision", "recall", "f1", "accuracy"):
        assert metrics[key] == pytest.approx(run.metrics[f"test.{key}"], abs=1e-6), key
    assert metrics["per_type"] == run.metrics["test.per_type"]


def test_cli_predict_and_eval(trained, cli, tmp_path):
    _, run = trained
    code, out, err = cli("predict", run.dir, "--text", "ann met peter berg in oslo .")
    assert code == 0, err
    line = json.loads(out.strip())
    assert line["text"] == "ann met peter berg in oslo ."
    assert ("oslo", "LOC") in {(e["text"], e["type"]) for e in line["entities"]}, line
    eval_file = write_jsonl(tmp_path / "gold.jsonl", english_sentences(12, seed=9))
    code, out, err = cli("eval", run.dir, eval_file, "--output", tmp_path / "eval.json")
    assert code == 0, err
    written = json.loads((tmp_path / "eval.json").read_text(encoding="utf-8"))
    assert written["eval.count"] == 12 and set(written["eval.per_type"]) <= {"PER", "LOC", "ORG"}
    assert f"F1 {written['eval.f1']:.4f}" in out and "PER" in out


def test_only_the_methods_parameters_changed(trained, ner_data):
    """lora and adapter leave the backbone's own weights as they were (only their modules and the head train);
    full fine-tuning changes them."""
    method, run = trained
    from safetensors.torch import load_file

    base = load_file(str(ner_data["model"] / "model.safetensors"))
    model = tuneforge.load(run.dir).model
    state = {n.replace("base_model.model.", "").replace(".base_layer", ""): p for n, p in model.state_dict().items()}
    same = {}
    for name, value in base.items():
        key = name if name in state else f"bert.{name}"
        if key in state and "dense" in key and state[key].shape == value.shape:
            same[key] = torch.equal(state[key], value)
    assert same
    if method == "full":
        assert not any(same.values()), same
    else:
        assert all(same.values()), [k for k, v in same.items() if not v]


# --- bad input from the command line: exit code 2, the file / line / field and the fix, no traceback -------


@pytest.fixture(scope="module")
def quick_run(ner_data, tmp_path_factory) -> Path:
    """A short full run: the bad-input checks need a token run folder, not a good model."""
    cfg = ner_config(ner_data, "full", tmp_path_factory.mktemp("ner-quick") / "run")
    cfg["train"]["epochs"] = 1
    return tuneforge.train(cfg, progress=False).dir


def write_yaml(path: Path, cfg: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def case_eval_conll_with_a_bad_tag(tmp_path, cfg, run_dir):
    bad = tmp_path / "gold.conll"
    bad.write_text("John B-PER\nlives O\n\nParis LOCATION\n", encoding="utf-8")
    return ["eval", run_dir, bad], ["gold.conll line 4", '"LOCATION" is not a BIO tag', "B-PER"]


def case_eval_jsonl_entity_off_word_boundaries(tmp_path, cfg, run_dir):
    bad = write_jsonl(tmp_path / "gold.jsonl", [{"text": "john smith", "entities": [{"start": 1, "end": 10,
                                                                                       "label": "PER"}]}])
    return ["eval", run_dir, bad], ["gold.jsonl line 1", "word boundaries"]


def case_eval_a_csv_file(tmp_path, cfg, run_dir):
    (tmp_path / "gold.csv").write_text("text,label\njohn,PER\n", encoding="utf-8")
    return ["eval", run_dir, tmp_path / "gold.csv"], ["gold.csv", "token classification reads", ".conll"]


def case_eval_a_type_the_run_never_saw(tmp_path, cfg, run_dir):
    gold = write_jsonl(tmp_path / "gold.jsonl", [{"tokens": ["acme"], "tags": ["B-MISC"]}])
    return ["eval", run_dir, gold], ["B-MISC", "never seen in training"]


def case_train_file_with_bad_lines(tmp_path, cfg, run_dir):
    train = write_jsonl(tmp_path / "train.jsonl", [{"tokens": ["john", "smith"], "tags": ["B-PER", "I-PER"]},
                                                   {"tokens": ["paris"], "tags": ["B-LOC", "O"]},
                                                   {"tokens": ["oslo"], "tags": ["S-LOC"]}])
    cfg["data"]["train"] = str(train)
    return ["train", write_yaml(tmp_path / "c.yaml", cfg)], [
        "train.jsonl line 2: 1 tokens but 2 tags", 'train.jsonl line 3: tag "S-LOC" is BIOES']


def case_train_with_a_virtual_token_method(tmp_path, cfg, run_dir):
    cfg["method"] = {"name": "prompt"}
    return ["train", write_yaml(tmp_path / "c.yaml", cfg)], ["method prompt is not available for token "
                                                             "classification", "lora"]


def case_train_with_augmentation(tmp_path, cfg, run_dir):
    cfg["augment"] = {}
    return ["train", write_yaml(tmp_path / "c.yaml", cfg)], ["augment: is for text classification"]


def case_train_with_a_prompt(tmp_path, cfg, run_dir):
    cfg["prompt"] = {"template": "{text} it was {answer}.", "verbalizer": {"PER": "person", "LOC": "place"}}
    return ["train", write_yaml(tmp_path / "c.yaml", cfg)], ["prompt:", "Remove the prompt: section"]


def case_train_ner_dataset_as_text_classification(tmp_path, cfg, run_dir):
    cfg.pop("task")
    cfg["data"] = {"dataset": "peoples-daily-ner"}
    return ["train", write_yaml(tmp_path / "c.yaml", cfg)], ["token-classification dataset",
                                                             "task: token-classification"]


def case_misspelled_task(tmp_path, cfg, run_dir):
    cfg["task"] = "token-clasification"
    return ["train", write_yaml(tmp_path / "c.yaml", cfg)], ["task", "token-classification"]


CASES = {name.removeprefix("case_"): fn for name, fn in globals().items() if name.startswith("case_")}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_exits_2_with_a_message_and_leaves_nothing_behind(case, cli, quick_run, ner_data, tmp_path):
    cfg = ner_config(ner_data, "full", tmp_path / "out" / "run")
    args, expected = CASES[case](tmp_path, cfg, quick_run)
    before = sorted(p.name for p in quick_run.iterdir())
    code, out, err = cli(*args)
    assert code == 2, f"exit code {code}\nstdout: {out}\nstderr: {err}"
    assert "error:" in err and "Traceback" not in err + out
    flat = " ".join(err.split())
    for text in expected:
        assert text in flat, f"{text!r} not in: {err}"
    assert not (tmp_path / "out").exists()  # a refused training run creates no run folder
    assert sorted(p.name for p in quick_run.iterdir()) == before  # a refused eval writes nothing


def test_bad_input_in_a_real_process_has_no_traceback(quick_run, tmp_path):
    import os
    import subprocess

    args, expected = case_eval_conll_with_a_bad_tag(tmp_path, {}, quick_run)
    src = str(Path(tuneforge.__file__).resolve().parents[1])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200",
           "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-m", "tuneforge", *map(str, args)], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("error:") and "Traceback" not in result.stderr
    assert "gold.conll line 4" in result.stderr
