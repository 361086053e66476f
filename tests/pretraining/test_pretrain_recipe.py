"""``tuneforge pretrain`` end to end on tiny models: MLM and CLM from scratch, resume, continued pretraining,
and the output folder as ``model:`` of ``tuneforge train``."""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from tiny_fixtures import write_corpus
from tuneforge.cli.main import app
from tuneforge.errors import TuneforgeError
from tuneforge.recipes.pretrain import pretrain
from tuneforge.recipes.train import train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt")


def tiny(corpus, out, objective="mlm", **train):
    # char and bpe tokenizers train deterministically (wordpiece breaks ties differently in each process: a
    # resumed run reads the tokenizer saved in its folder, but two fresh runs could differ)
    return {"name": "tiny-lm", "objective": objective, "corpus": {"sources": [str(corpus)], "heldout": 0.1},
            "tokenizer": {"kind": "char" if objective == "mlm" else "bpe", "vocab_size": 120, "min_frequency": 1},
            "masking": {"whole_word": objective == "mlm"},
            "architecture": {"layers": 1, "hidden_size": 32, "heads": 2, "max_position": 64},
            "max_length": 32,
            "train": {"max_steps": 30, "batch_size": 16, "learning_rate": 3e-3, "precision": "fp32", "seed": 0,
                      "log_every": 5, "eval_every": 15, **train},
            "output_dir": str(out)}


@pytest.fixture(scope="module")
def mlm_run(corpus, tmp_path_factory):
    return pretrain(tiny(corpus, tmp_path_factory.mktemp("mlm") / "run"), progress=False)


def test_mlm_from_scratch_learns_and_writes_a_run_folder(mlm_run):
    for name in ("config.yaml", "run.json", "metrics.json", "log.jsonl", "loss.png", "model/config.json",
                 "model/model.safetensors", "model/tokenizer.json"):
        assert (mlm_run / name).exists(), name
    m = json.loads((mlm_run / "metrics.json").read_text())
    assert m["heldout.loss"] < m["before.loss"] - 0.3
    assert m["heldout.accuracy"] > m["before.accuracy"]
    assert m["train.steps"] == 30 and m["train.tokens_per_second"] > 0
    weights = load_file(str(mlm_run / "model/model.safetensors"))
    assert any(k.startswith("cls.predictions") for k in weights)


def test_pretrained_folder_is_a_model_for_tuneforge_train(mlm_run, make_tiny_config, tmp_path):
    cfg = make_tiny_config(tmp_path / "ft")
    cfg["model"] = str(mlm_run / "model")
    cfg["train"]["epochs"] = 1
    run = train(cfg, progress=False)
    assert run.metrics["test.accuracy"] >= 0
    # the encoder's weights came from the pretrained folder, not a fresh init
    pretrained = load_file(str(mlm_run / "model/model.safetensors"))
    from tuneforge.models.backbones import load_backbone

    backbone = load_backbone(str(mlm_run / "model"), ["a", "b"])
    loaded = dict(backbone.model.named_parameters())
    key = "bert.encoder.layer.0.attention.self.query.weight"
    assert torch.equal(loaded[key].detach(), pretrained[key])
    assert not any(n.startswith("bert.encoder") or n.startswith("bert.embeddings") for n in backbone.new_parameters)


def test_resume_equals_uninterrupted(corpus, mlm_run, tmp_path):
    cfg = tiny(corpus, tmp_path / "run", checkpoint_every=10)
    with pytest.raises(KeyboardInterrupt):
        pretrain(cfg, progress=False, _stop_after=15)
    assert not (tmp_path / "run/model").exists()
    with pytest.raises(TuneforgeError, match=re.escape("Continue it with `tuneforge pretrain --resume")):
        pretrain(cfg, progress=False)  # a new run into the interrupted one's folder: the way to continue it
    pretrain(None, resume=tmp_path / "run", progress=False)
    a = load_file(str(mlm_run / "model/model.safetensors"))
    b = load_file(str(tmp_path / "run/model/model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key


def test_clm_from_scratch_and_as_a_classifier(corpus, make_tiny_config, tmp_path):
    run_dir = pretrain(tiny(corpus, tmp_path / "clm", objective="clm"), progress=False)
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["heldout.loss"] < m["before.loss"] - 0.3
    assert json.loads((run_dir / "model/config.json").read_text())["architectures"] == ["LlamaForCausalLM"]
    cfg = make_tiny_config(tmp_path / "ft")
    cfg["model"] = str(run_dir / "model")
    cfg["train"]["epochs"] = 1
    assert train(cfg, progress=False).metrics["test.count"] == 30


def test_pre_norm_mlm_with_sinusoidal_positions_learns_and_fine_tunes(corpus, make_tiny_config, tmp_path):
    from tuneforge.pretraining.model import sinusoidal_positions

    cfg = tiny(corpus, tmp_path / "pre")
    cfg["architecture"] |= {"norm": "pre", "position_init": "sinusoidal"}
    init_dir = pretrain({**cfg, "output_dir": str(tmp_path / "pre-init")}, init_only=True, progress=False)
    weights = load_file(str(init_dir / "model/model.safetensors"))
    positions = weights["roberta_prelayernorm.embeddings.position_embeddings.weight"]
    assert torch.allclose(positions, sinusoidal_positions(*positions.shape))
    run_dir = pretrain(cfg, progress=False)
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["heldout.loss"] < m["before.loss"] - 0.3
    config = json.loads((run_dir / "model/config.json").read_text())
    assert config["architectures"] == ["RobertaPreLayerNormForMaskedLM"]
    # positions count from pad_token_id + 1 in RoBERTa: a max_length input still fits
    assert config["max_position_embeddings"] == 64 + config["pad_token_id"] + 1
    ft = make_tiny_config(tmp_path / "ft")
    ft["model"], ft["train"]["epochs"] = str(run_dir / "model"), 1
    assert train(ft, progress=False).metrics["test.count"] == 30


def test_sinusoidal_positions_table():
    from tuneforge.pretraining.model import sinusoidal_positions

    table = sinusoidal_positions(50, 8, std=0.02)
    assert table.shape == (50, 8) and abs(float(table.std()) - 0.02) < 1e-6
    assert torch.all(table[0, 0::2] == 0) and torch.allclose(table[0, 1::2], table[0, 1].expand(4))
    # every (sin, cos) pair has the same norm at every position: an offset is a rotation of each pair
    pairs = table[:, 0::2] ** 2 + table[:, 1::2] ** 2
    assert torch.allclose(pairs, pairs[0].expand(50, 4), atol=1e-6)


def test_continued_mlm_from_an_encoder_without_head(tiny_bert, corpus, tmp_path):
    cfg = tiny(corpus, tmp_path / "cont")
    cfg["model"] = str(tiny_bert)
    run_dir = pretrain(cfg, progress=False)
    m = json.loads((run_dir / "metrics.json").read_text())
    assert any(k.startswith("cls.predictions") for k in m["new_parameters"])
    vocab = (tiny_bert / "vocab.txt").read_text(encoding="utf-8").split()
    assert m["vocab_size"] == len(vocab)  # the encoder's own tokenizer, not a new one
    assert m["heldout.loss"] < m["before.loss"]


def test_init_only_writes_the_untrained_model(corpus, tmp_path):
    run_dir = pretrain(tiny(corpus, tmp_path / "init"), init_only=True, progress=False)
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["train.steps"] == 0 and m["heldout.loss"] == m["before.loss"]
    assert (run_dir / "model/model.safetensors").exists()


def test_cli_errors_and_help(corpus, tmp_path):
    runner = CliRunner()
    assert runner.invoke(app, ["pretrain", "--help"]).exit_code == 0
    shown = runner.invoke(app, ["config", "show", "pretrain"])
    assert shown.exit_code == 0 and "masking:" in shown.output and "whole_word" in shown.output
    path = tmp_path / "bad.yaml"
    path.write_text(f"corpus: {{sources: [{corpus}]}}\nmaskng: {{probability: 0.2}}\n", encoding="utf-8")
    with pytest.raises(TuneforgeError, match='unknown key "maskng". Did you mean "masking"'):
        pretrain(path)
    with pytest.raises(TuneforgeError, match="macro_f1 is a classification metric"):
        pretrain(tiny(corpus, tmp_path / "x", metric="macro_f1"))
    with pytest.raises(TuneforgeError, match="position_init applies to objective: mlm"):
        pretrain({**tiny(corpus, tmp_path / "z", objective="clm"),
                  "architecture": {"layers": 1, "hidden_size": 32, "heads": 2, "position_init": "sinusoidal"}})
    with pytest.raises(TuneforgeError, match="whole_word applies to objective: mlm"):
        pretrain({**tiny(corpus, tmp_path / "y", objective="clm"), "masking": {"whole_word": True}})


def _main(monkeypatch, capsys, *args):
    import sys

    from tuneforge.cli.main import main

    monkeypatch.setattr(sys, "argv", ["tuneforge", *map(str, args)])
    with pytest.raises(SystemExit) as info:
        main()
    captured = capsys.readouterr()
    return info.value.code or 0, captured.out, captured.err


def test_cli_pretrain_runs_and_bad_input_exits_2(corpus, tmp_path, monkeypatch, capsys):
    import yaml

    cfg = tiny(corpus, tmp_path / "cli-run", max_steps=4)
    path = tmp_path / "lm.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    code, out, err = _main(monkeypatch, capsys, "pretrain", path, "--quiet")
    assert code == 0 and "model folder" in out and (tmp_path / "cli-run/model/config.json").exists()
    # the same output_dir again: refused, nothing overwritten
    before = (tmp_path / "cli-run/model/model.safetensors").read_bytes()
    code, out, err = _main(monkeypatch, capsys, "pretrain", path, "--quiet")
    assert code == 2 and "already exists and is not empty" in err and "Traceback" not in err
    assert "it holds a finished run" in err and "--resume" not in err  # it offered --resume, which refuses it
    assert (tmp_path / "cli-run/model/model.safetensors").read_bytes() == before
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine/notes.txt").write_text("keep me", encoding="utf-8")
    code, out, err = _main(monkeypatch, capsys, "pretrain", path, f"output_dir={tmp_path / 'mine'}", "--quiet")
    assert code == 2 and "is not a tuneforge run folder" in " ".join(err.split()) and "--resume" not in err
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]
    code, out, err = _main(monkeypatch, capsys, "pretrain", path, "corpus.sources=[nope.txt]",
                           f"output_dir={tmp_path / 'other'}", "--quiet")
    assert code == 2 and "nope.txt" in err and "Traceback" not in err
    code, out, err = _main(monkeypatch, capsys, "pretrain", path, "model=./missing-folder",
                           f"output_dir={tmp_path / 'other2'}", "--quiet")
    assert code == 2 and "does not exist" in err


def test_python_api_exports_pretrain(corpus, tmp_path):
    import tuneforge

    assert tuneforge.pretrain is pretrain
    cfg = tuneforge.PretrainConfig.model_validate(tiny(corpus, tmp_path / "api"))
    assert cfg.train.metric == "loss"


def _bag_loss_at_cls(model_dir, corpus) -> float:
    """Cross-entropy of the MLM head at [CLS] against each line's character distribution (lower: [CLS] knows
    more of what the text holds)."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from tuneforge.pretraining.objectives import bag_targets

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForMaskedLM.from_pretrained(str(model_dir)).eval()
    lines = corpus.read_text(encoding="utf-8").splitlines()[:64]
    batch = tokenizer(lines, truncation=True, max_length=32, padding=True, return_tensors="pt")
    special = (batch["attention_mask"] == 0) | torch.isin(batch["input_ids"], torch.tensor(tokenizer.all_special_ids))
    with torch.no_grad():
        logits = model(**batch).logits[:, 0]  # (B, V)
    bag = bag_targets(batch["input_ids"], special, logits.shape[-1])
    return float(-(bag * torch.log_softmax(logits, -1)).sum(-1).mean())


def test_cls_bag_weight_teaches_the_first_token_what_the_text_holds(corpus, tmp_path):
    # the same run with and without the term (same seed, 100 steps)
    with_bag = pretrain({**tiny(corpus, tmp_path / "bag", max_steps=100), "cls_bag_weight": 1.0}, progress=False)
    without = pretrain(tiny(corpus, tmp_path / "no-bag", max_steps=100), progress=False)
    assert _bag_loss_at_cls(with_bag / "model", corpus) < _bag_loss_at_cls(without / "model", corpus) - 0.1
    with pytest.raises(TuneforgeError, match="cls_bag_weight applies to objective: mlm"):
        pretrain({**tiny(corpus, tmp_path / "bag-clm", objective="clm"), "cls_bag_weight": 1.0})


def test_embedding_init_warm_starts_the_mlm_and_cjk_words_fine_tunes(corpus, make_tiny_config, tmp_path):
    cfg = tiny(corpus, tmp_path / "warm", max_steps=1, learning_rate=1e-9)
    cfg["tokenizer"]["kind"] = "cjk_words"
    cfg["embedding_init"] = {"kind": "cooccurrence", "window": 3}
    warm = pretrain(cfg, progress=False)
    cold = pretrain({**cfg, "output_dir": str(tmp_path / "cold")}, init_only=True, progress=False)
    m = json.loads((warm / "metrics.json").read_text())
    vocab = m["vocab_size"]
    assert 0 < m["embedding_init.rows"] <= vocab - 5 and m["embedding_init.kind"] == "cooccurrence"
    assert "embedding_init" not in json.loads((cold / "metrics.json").read_text())  # --init-only: random
    assert "window: 3" in (warm / "config.yaml").read_text()
    key = "bert.embeddings.word_embeddings.weight"
    a, b = (load_file(str(run / "model/model.safetensors"))[key] for run in (warm, cold))
    assert torch.allclose(a[:5], b[:5], atol=1e-6)  # special tokens keep their random rows (one step of lr 1e-9)
    assert (a[5:] - b[5:]).abs().mean() > 0.01  # the others were replaced ...
    assert abs(a[5:].std().item() - 0.02) < 0.005  # ... at the init scale
    # the cjk_words tokenizer reloads from the folder as saved, and the encoder fine-tunes
    ft = make_tiny_config(tmp_path / "ft")
    ft["model"], ft["train"]["epochs"] = str(warm / "model"), 1
    assert train(ft, progress=False).metrics["test.count"] == 30


def test_heldout_slice_without_a_scored_token_is_refused(tmp_path):
    # two two-word documents: the one held out gets no masked token with the training seed, and the scores
    # read loss 0, perplexity 1.0 (a perfect model) on nothing unless the run stops and says why
    corpus = tmp_path / "two.txt"
    corpus.write_text("hello world\nsecond doc\n", encoding="utf-8")
    cfg = tiny(corpus, tmp_path / "run")
    cfg["corpus"]["heldout"] = 0.2
    with pytest.raises(TuneforgeError, match=r"held-out slice \(1 document\(s\).*no masked token.*corpus.heldout"):
        pretrain(cfg, progress=False)
    assert not (tmp_path / "run/model").exists()
    assert json.loads((tmp_path / "run/run.json").read_text())["status"] == "failed"
