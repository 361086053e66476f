"""Distillation: the loss against a hand computation, the student built from teacher layers, ``tuneforge
distill`` end to end (cached and online teacher logits, unlabelled texts), and clear errors."""

from __future__ import annotations

import json
import math
import sys

import pytest
import torch
import yaml

import tuneforge
from tuneforge.compression.config import DistillConfig
from tuneforge.compression.distill import distillation_loss, kept_layers, student_from_teacher
from tuneforge.config import TrainConfig, load_config
from tuneforge.errors import TuneforgeError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def teacher(make_tiny_config, tmp_path_factory):
    return tuneforge.train(make_tiny_config(tmp_path_factory.mktemp("teacher") / "run"), progress=False)


def distill_config(teacher, make_tiny_config, output_dir, **distill) -> dict:
    cfg = make_tiny_config(output_dir)
    cfg.pop("model")
    cfg["name"] = "student"
    cfg["train"].update(epochs=1)
    cfg["distill"] = {"teacher": str(teacher.dir), "student": {"layers": 1}, **distill}
    return cfg


def test_distillation_loss_matches_a_hand_computation():
    student = torch.tensor([[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]])
    teacher = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    labels = torch.tensor([0, -1])  # the second text is unlabelled: soft term only
    t, alpha = 2.0, 0.3

    def softmax(row):
        e = [math.exp(v / t) for v in row]
        return [v / sum(e) for v in e]

    kl = sum(sum(p * math.log(p / q) for p, q in zip(softmax(tr), softmax(sr)))
             for tr, sr in zip(teacher.tolist(), student.tolist())) / 2
    ce = -math.log(math.exp(1.0) / (math.exp(1.0) + 1 + math.exp(-1.0)))  # row 0, label 0, at T = 1
    expected = alpha * t * t * kl + (1 - alpha) * ce
    assert distillation_loss(student, teacher, labels, t, alpha).item() == pytest.approx(expected, rel=1e-5)
    # alpha = 0: plain cross-entropy; a student equal to its teacher has no soft loss
    assert distillation_loss(student, teacher, labels, t, 0.0).item() == pytest.approx(ce, rel=1e-5)
    assert distillation_loss(teacher, teacher, torch.tensor([-1, -1]), t, 1.0).item() == pytest.approx(0, abs=1e-6)


def test_kept_layers_are_evenly_spaced_and_end_with_the_last():
    assert kept_layers(6, 3) == [1, 3, 5]
    assert kept_layers(12, 4) == [2, 5, 8, 11]
    assert kept_layers(2, 1) == [1]
    with pytest.raises(TuneforgeError, match="fewer"):
        kept_layers(6, 6)


def test_student_copies_the_chosen_teacher_layers(teacher):
    model = teacher.method.merge(teacher.model)
    student, chosen = student_from_teacher(model, 1)
    assert chosen == [1] and student.config.num_hidden_layers == 1 and len(student.bert.encoder.layer) == 1
    assert len(model.bert.encoder.layer) == 2  # the teacher is untouched
    copied = student.bert.encoder.layer[0].output.dense.weight
    original = model.bert.encoder.layer[1].output.dense.weight
    assert torch.equal(copied, original)
    assert student.bert.encoder.layer[0].output.dense.weight is not model.bert.encoder.layer[1].output.dense.weight


def test_distill_through_the_cli_writes_a_normal_run(teacher, make_tiny_config, tmp_path, monkeypatch, capsys):
    from transformers import AutoModelForSequenceClassification

    from tuneforge.cli.main import main

    cfg = distill_config(teacher, make_tiny_config, tmp_path / "student")
    path = tmp_path / "distill.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    monkeypatch.setattr(sys, "argv", ["tuneforge", "distill", str(path), "distill.temperature=3", "--quiet"])
    with pytest.raises(SystemExit) as info:
        main()
    captured = capsys.readouterr()
    assert (info.value.code or 0) == 0, captured.err
    assert "texts/s" in captured.out
    out = tmp_path / "student"
    metrics = json.loads((out / "metrics.json").read_text())
    for who in ("teacher", "student"):
        for key in ("parameters", "size_mb", "texts_per_second", "test_accuracy", "test_macro_f1"):
            assert f"{who}.{key}" in metrics
    assert metrics["student.parameters"] < metrics["teacher.parameters"]
    assert metrics["distill.teacher_logits"] == "cache" and metrics["train.steps"] == 12
    assert isinstance(load_config(TrainConfig, path=out / "config.yaml"), TrainConfig)
    saved = load_config(DistillConfig, path=out / "distill.yaml")  # the whole config, loadable again
    assert saved.distill.temperature == 3 and saved.distill.student.layers == 1
    assert json.loads((out / "distill.json").read_text())["layers_of_teacher"] == [1]
    run = tuneforge.load(out)
    assert run.model.config.num_hidden_layers == 1
    assert len(run.predict(["the flight was late"])) == 1
    alone = AutoModelForSequenceClassification.from_pretrained(out / "model")
    assert len(alone.bert.encoder.layer) == 1


def test_online_teacher_logits_train_the_same_student_as_cached(teacher, make_tiny_config, tmp_path):
    runs = {}
    for mode in ("cache", "online"):
        cfg = distill_config(teacher, make_tiny_config, tmp_path / mode, teacher_logits=mode)
        cfg["train"].update(max_steps=3)
        runs[mode] = tuneforge.distill(cfg, progress=False)
    a, b = (dict(runs[m].model.named_parameters()) for m in ("cache", "online"))
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5), name


def test_unlabelled_texts_join_the_soft_loss(teacher, make_tiny_config, tmp_path):
    texts = tmp_path / "more.txt"
    texts.write_text("".join(f"the crew was {w} today\n" for w in ["great", "late", "rude", "friendly"] * 4))
    cfg = distill_config(teacher, make_tiny_config, tmp_path / "student", unlabelled=str(texts))
    run = tuneforge.distill(cfg, ["train.epochs=1"], progress=False)
    status = json.loads((run.dir / "run.json").read_text())
    assert status["data"]["unlabelled"] == 16
    assert run.metrics["train.samples"] == 96 + 16


@pytest.mark.parametrize("change, message", [
    ({"distill": {"teacher": "nowhere", "student": {"layers": 1}}}, "distill.teacher"),
    ({"distill": {"student": {"layers": 2}}}, "fewer"),
    ({"distill": {"student": {}}}, "exactly one of distill.student.layers"),
    ({"model": "minilm"}, "remove the top-level model"),
    ({"method": {"name": "lora"}}, "method: full"),
    ({"distill": {"temperature": 0}}, "distill.temperature"),
    ({"distill": {"unlabelled": "missing.txt"}}, "distill.unlabelled"),
])
def test_bad_distill_input_is_a_clear_error(teacher, make_tiny_config, tmp_path, change, message):
    cfg = distill_config(teacher, make_tiny_config, tmp_path / "student")
    for key, value in change.items():
        if isinstance(value, dict) and key in cfg:
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    with pytest.raises(TuneforgeError) as info:
        tuneforge.distill(cfg, progress=False)
    assert message in str(info.value)
    assert not (tmp_path / "student").exists()


def test_the_shipped_distill_config_validates():
    from pathlib import Path

    cfg = load_config(DistillConfig, path=Path(__file__).resolve().parents[2] / "configs" / "airline-distill.yaml")
    assert cfg.distill.student.layers == 3 and cfg.method.name == "full"


def test_a_token_classification_teacher_or_config_is_refused(teacher, make_tiny_config, tmp_path):
    """A tagging teacher was reported as a label mismatch, and task: token-classification as bad data."""
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "tasks"))
    from tiny_ner import tiny_ner_config

    ner = tuneforge.train(tiny_ner_config(tmp_path / "ner"), progress=False)
    cfg = distill_config(ner, make_tiny_config, tmp_path / "student")
    with pytest.raises(TuneforgeError, match=r"distill.teacher .*: task: token-classification; tuneforge distill"):
        tuneforge.distill(cfg, progress=False)
    cfg = distill_config(teacher, make_tiny_config, tmp_path / "student") | {"task": "token-classification"}
    with pytest.raises(TuneforgeError, match="task: token-classification; tuneforge distill works on text"):
        tuneforge.distill(cfg, progress=False)
    assert not (tmp_path / "student").exists()


def test_augment_adds_copies_and_sections_distill_cannot_apply_are_refused(teacher, make_tiny_config, tmp_path):
    """augment: and contrastive: were accepted and silently ignored (the student trained on the plain data)."""
    cfg = distill_config(teacher, make_tiny_config, tmp_path / "student") | {"contrastive": {}}
    with pytest.raises(TuneforgeError, match="tuneforge distill does not apply the config's contrastive: section"):
        tuneforge.distill(cfg, progress=False)
    cfg = distill_config(teacher, make_tiny_config, tmp_path / "student") | {
        "augment": {"copies": 1, "operations": ["swap"]}}
    student = tuneforge.distill(cfg, ["train.max_steps=1"], progress=False)
    status = json.loads((student.dir / "run.json").read_text())
    assert status["data"]["train"] > 96  # the 96 examples and their swapped copies


def test_a_prompt_teacher_is_refused(make_tiny_config, tmp_path):
    """Its logits were taken on the bare texts, not on its cloze template: another model's predictions."""
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "models"))
    from test_backbones_decoder import build_tiny_decoder

    cfg = make_tiny_config(tmp_path / "pet")
    cfg.update(model=str(build_tiny_decoder(tmp_path / "decoder")),
               prompt={"template": "{text} it was {answer}",
                       "verbalizer": {"negative": "rude", "neutral": "crew", "positive": "great"}})
    cfg["train"]["max_steps"] = 1
    pet = tuneforge.train(cfg, progress=False)
    student = distill_config(pet, make_tiny_config, tmp_path / "student")
    student["distill"]["student"] = {"model": str(tmp_path / "decoder")}
    with pytest.raises(TuneforgeError, match=r"predicts through a cloze template \(prompt:\)"):
        tuneforge.distill(student, progress=False)
    assert not (tmp_path / "student").exists()


def test_a_student_of_a_head_pruned_teacher_renumbers_its_pruned_heads(teacher, make_tiny_config, tmp_path):
    """The student kept the teacher's {teacher layer: removed heads} map, so its folder failed to load (a
    transformers size-mismatch traceback after the whole distillation) or pruned the wrong layer's heads."""
    pruned = tuneforge.prune(teacher.dir, tmp_path / "pruned", heads=0.5, finetune_epochs=0, progress=False)
    removed = json.loads((pruned.dir / "model" / "config.json").read_text())["pruned_heads"]
    cfg = distill_config(pruned, make_tiny_config, tmp_path / "student")
    student = tuneforge.distill(cfg, ["train.max_steps=1"], progress=False)
    layers = json.loads((student.dir / "model" / "config.json").read_text())
    last = str(len(removed) - 1)  # layers: 1 keeps the teacher's last layer
    assert layers["pruned_heads"] == {"0": removed[last]}
    assert student.predict_proba(["the flight was late"]).shape == (1, 3)
