"""``tuneforge zeroshot`` end to end on tiny models: the run folder, the metrics, the user errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from tiny_lms import tiny_causal_lm, tiny_mlm  # noqa: F401 (fixtures)

import tuneforge
from tuneforge.cli.main import main
from tuneforge.config import TrainConfig, load_config
from tuneforge.errors import TuneforgeError

PROMPT = {"template": "Tweet: {text}\nSentiment: {answer}",
          "verbalizer": {"negative": ["bad", "negative"], "neutral": "okay", "positive": "good"}}


@pytest.fixture()
def cli(monkeypatch, capsys):
    def invoke(*args):
        monkeypatch.setattr(sys, "argv", ["tuneforge", *map(str, args)])
        with pytest.raises(SystemExit) as info:
            main()
        captured = capsys.readouterr()
        return (info.value.code or 0), captured.out, captured.err

    return invoke


def zeroshot_config(model: Path, data: dict[str, Path], output_dir: Path, **prompt) -> dict:
    return {"name": "tiny-zs", "model": str(model),
            "data": {"train": str(data["train"]), "validation": str(data["validation"]), "test": str(data["test"]),
                     "max_length": 48},
            "prompt": {**PROMPT, **prompt}, "train": {"batch_size": 16, "precision": "fp32"},
            "output_dir": str(output_dir)}


def test_zeroshot_cli_writes_a_self_describing_run_folder(cli, tiny_causal_lm, tiny_data, tmp_path):  # noqa: F811
    path = tmp_path / "zs.yaml"
    path.write_text(yaml.safe_dump(zeroshot_config(tiny_causal_lm, tiny_data, tmp_path / "run")), encoding="utf-8")
    code, out, err = cli("zeroshot", path, "prompt.calibrate=true", "--quiet")
    assert code == 0, err
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} >= {"config.yaml", "run.json", "labels.json", "prompt.json", "metrics.json",
                                               "confusion_matrix.png", "predictions-test.jsonl"}
    saved = load_config(TrainConfig, path=run / "config.yaml")
    assert saved.prompt is not None and saved.prompt.calibrate and saved.prompt.template == PROMPT["template"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["test.accuracy"] <= 1 and 0 <= metrics["test.macro_f1"] <= 1
    assert metrics["test.count"] == 30 and metrics["validation.count"] == 24
    assert set(metrics["test.per_class"]) == {"negative", "neutral", "positive"}
    assert metrics["zeroshot.model_kind"] == "causal" and metrics["zeroshot.texts_per_second"] > 0
    prompt = json.loads((run / "prompt.json").read_text())
    assert prompt["verbalizer"]["negative"] == ["bad", "negative"] and prompt["calibrate"]
    assert prompt["words"]["negative"][1]["tokens"][0].startswith("Ġ")  # " negative", tokenised with its space
    assert json.loads((run / "labels.json").read_text()) == ["negative", "neutral", "positive"]
    assert json.loads((run / "run.json").read_text())["status"] == "complete"
    assert (run / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert len((run / "predictions-test.jsonl").read_text().splitlines()) == 30
    assert f"accuracy {metrics['test.accuracy']:.4f}" in out and "negative" in out
    code, _, err = cli("predict", run, "--text", "late again")
    assert code == 2 and "is a zero-shot run" in err and "tuneforge zeroshot" in err


def test_zeroshot_python_api_with_limit_on_a_masked_lm(tiny_mlm, tiny_data, tmp_path):  # noqa: F811
    cfg = zeroshot_config(tiny_mlm, tiny_data, tmp_path / "run", template="{text}. it was {answer}.",
                          verbalizer={"negative": "unhappy", "neutral": "okay", "positive": "good"})
    result = tuneforge.zeroshot(cfg, limit=9, progress=False)
    assert result.metrics["test.count"] == 9 and result.metrics["validation.count"] == 9
    assert result.metrics["zeroshot.model_kind"] == "masked" and result.metrics["zeroshot.limit"] == 9
    assert [c["support"] for c in result.metrics["test.per_class"].values()] == [3, 3, 3]  # stratified
    words = json.loads((result.dir / "prompt.json").read_text())["words"]
    assert words["negative"][0]["tokens"] == ["un", "##happy"]


def test_zeroshot_on_text_pairs(tiny_mlm, tmp_path):  # noqa: F811
    rows = [{"a": "great crew", "b": "love it", "label": "same"},
            {"a": "late again", "b": "happy", "label": "different"},
            {"a": "rude seat", "b": "awful", "label": "same"}, {"a": "thanks", "b": "lost bag", "label": "different"}]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cfg = {"model": str(tiny_mlm), "output_dir": str(tmp_path / "run"), "train": {"precision": "fp32"},
           "data": {"train": str(path), "validation": str(path), "text_column": "a", "text_pair_column": "b"},
           "prompt": {"template": "{text} . {answer} , {text_pair}",
                      "verbalizer": {"same": "good", "different": "bad"}}}
    result = tuneforge.zeroshot(cfg, progress=False)
    assert result.metrics["test.count"] == 4 and result.labels == ["same", "different"]
    assert result.metrics["zeroshot.texts"] == 4  # no test file: the validation data, scored once
    predictions = (result.dir / "predictions-test.jsonl").read_text().splitlines()
    assert json.loads(predictions[0])["text_pair"] == "love it"
    cfg["prompt"]["template"] = "{text} . {answer}"
    with pytest.raises(TuneforgeError, match="no {text_pair} slot"):
        tuneforge.zeroshot(cfg, progress=False)


def test_zeroshot_errors_in_the_users_words(cli, tiny_causal_lm, tiny_bert, tiny_data, tmp_path):  # noqa: F811
    def error(cfg: dict, overrides=()) -> str:
        with pytest.raises(TuneforgeError) as info:
            tuneforge.zeroshot(cfg, list(overrides), progress=False)
        return str(info.value)

    cfg = zeroshot_config(tiny_causal_lm, tiny_data, tmp_path / "run")
    missing = error({**cfg, "prompt": {**PROMPT, "verbalizer": {"negative": "bad", "positive": "good"}}})
    assert 'no word for the label(s) "neutral" (in test/train/validation)' in missing
    assert "prompt.verbalizer.neutral: WORD" in missing
    assert "must come last" in error({**cfg, "prompt": {**PROMPT, "template": "{answer}: {text}"}})
    assert "needs a prompt: section" in error({k: v for k, v in cfg.items() if k != "prompt"})
    assert "no trained MLM head" in error({**cfg, "model": str(tiny_bert)})
    assert not (tmp_path / "run").exists()  # refused before any folder was written
    assert "no second text" in error({**cfg, "prompt": {**PROMPT, "template": "{text} {text_pair} {answer}"}})
    with pytest.raises(TuneforgeError, match="--limit 0"):
        tuneforge.zeroshot(cfg, limit=0)
    with pytest.raises(TuneforgeError, match="multi_token: first"):
        tuneforge.train(cfg)  # train reads the prompt (PET) and refuses what it cannot score in one pass
    path = tmp_path / "zs.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    code, _, err = cli("zeroshot", path, "prompt.verbaliser.neutral=okay")
    assert code == 2 and 'unknown key "prompt.verbaliser". Did you mean "verbalizer"?' in err


def test_words_the_model_cannot_tell_apart_are_refused(tiny_mlm, tiny_causal_lm, tiny_data, tmp_path):  # noqa: F811
    """A word the vocabulary lacks is [UNK], the same token for every unknown word; words of two labels scored as
    the same tokens tie on every text. Both gave uniform probabilities and 'negative' for everything, exit 0."""
    def error(cfg: dict) -> str:
        with pytest.raises(TuneforgeError) as info:
            tuneforge.zeroshot(cfg, progress=False)
        return str(info.value)

    unknown = error(zeroshot_config(tiny_mlm, tiny_data, tmp_path / "run", verbalizer={
        "negative": ["bad", "horrible"], "neutral": "okay", "positive": "excellent"}))
    assert '"horrible" (negative), "excellent" (positive): not in the vocabulary of' in unknown
    assert "[UNK]" in unknown and "Choose words the tokenizer knows" in unknown
    same = error(zeroshot_config(tiny_mlm, tiny_data, tmp_path / "run", verbalizer={
        "negative": "bad", "neutral": "Good", "positive": "good"}))  # an uncased vocabulary: both are "good"
    assert "\"Good\" (neutral) and \"good\" (positive) are scored as the same token(s) ['good']" in same
    first = error(zeroshot_config(tiny_causal_lm, tiny_data, tmp_path / "run", multi_token="first",
                                  verbalizer={"negative": "negative", "neutral": "neutral", "positive": "good"}))
    assert "\"negative\" (negative) and \"neutral\" (neutral) are scored as the same token(s) ['Ġne']" in first
    assert "prompt.multi_token: mean" in first
    assert not (tmp_path / "run").exists()
    with pytest.raises(TuneforgeError, match="scored as the same token"):  # PET training scores them the same way
        tuneforge.train(zeroshot_config(tiny_causal_lm, tiny_data, tmp_path / "pet", multi_token="first",
                                        verbalizer={"negative": "negative", "neutral": "neutral", "positive": "good"}),
                        progress=False)
    # every word of its own (the first tokens of " negative" and " neutral" differ from the rest): scored as usual
    ok = tuneforge.zeroshot(zeroshot_config(tiny_causal_lm, tiny_data, tmp_path / "ok", verbalizer={
        "negative": "negative", "neutral": "neutral", "positive": "good"}), limit=3, progress=False)
    assert ok.metrics["test.count"] == 3


def test_an_output_dir_that_is_or_sits_in_a_file(tiny_mlm, tiny_data, tmp_path):  # noqa: F811
    """output_dir inside a file was a NotADirectoryError traceback (after loading the model); a file was 'already
    exists and is not empty'."""
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(TuneforgeError, match="notes.txt is a file, so no folder can be made inside it"):
        tuneforge.zeroshot(zeroshot_config(tiny_mlm, tiny_data, tmp_path / "notes.txt" / "run"), progress=False)
    with pytest.raises(TuneforgeError, match="notes.txt is a file, not a folder"):
        tuneforge.zeroshot(zeroshot_config(tiny_mlm, tiny_data, tmp_path / "notes.txt"), progress=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"
