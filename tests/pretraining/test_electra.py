"""objective: electra (replaced-token detection): the labels, the AUC, the run folder, the discriminator as
``model:`` of ``tuneforge train``, and the config errors."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from tiny_fixtures import write_corpus
from tuneforge.errors import TuneforgeError
from tuneforge.pretraining.electra import ElectraPair, auc, replace_tokens
from tuneforge.pretraining.masking import IGNORE, mask_tokens
from tuneforge.recipes.pretrain import pretrain
from tuneforge.recipes.train import train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt")


def tiny(corpus, out, **extra):
    return {"name": "tiny-electra", "objective": "electra", "corpus": {"sources": [str(corpus)], "heldout": 0.1},
            "tokenizer": {"kind": "char", "vocab_size": 120, "min_frequency": 1},
            "architecture": {"layers": 1, "hidden_size": 32, "heads": 2, "max_position": 64},
            "electra": {"generator_hidden": 16},
            "max_length": 32,
            "train": {"max_steps": 40, "batch_size": 16, "learning_rate": 3e-3, "precision": "fp32", "seed": 0,
                      "log_every": 5, "eval_every": 20},
            "output_dir": str(out), **extra}


def tiny_pair(vocab=40, hidden=32, g_hidden=16):
    from transformers import ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining

    shared = dict(vocab_size=vocab, embedding_size=hidden, max_position_embeddings=32, pad_token_id=0)
    d = ElectraForPreTraining(ElectraConfig(hidden_size=hidden, num_hidden_layers=1, num_attention_heads=2,
                                            intermediate_size=64, **shared))
    g = ElectraForMaskedLM(ElectraConfig(hidden_size=g_hidden, num_hidden_layers=1, num_attention_heads=1,
                                         intermediate_size=32, **shared))
    return ElectraPair(d, g)


def test_rtd_labels_are_one_exactly_where_a_token_was_replaced():
    torch.manual_seed(0)
    pair = tiny_pair()
    ids = torch.randint(5, 40, (8, 20))
    ids[:, 0], ids[:, -1] = 1, 2  # [CLS] ... [SEP]
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, [0, -1]] = True
    corrupted, labels = mask_tokens(ids, special, mask_id=3, vocab_size=40, probability=0.4)
    logits, targets, replaced, rtd = replace_tokens(pair.generator, ids, corrupted, labels,
                                                    torch.ones_like(ids))
    chosen = labels != IGNORE
    assert logits.shape == (int(chosen.sum()), 40) and torch.equal(targets, ids[chosen])
    assert torch.equal(replaced[~chosen], ids[~chosen])  # only the chosen positions can change
    assert torch.equal(rtd, (replaced != ids).float())  # 1 exactly where the token differs from the original
    assert 0 < rtd.sum() <= chosen.sum()


def test_generator_and_discriminator_share_embeddings():
    pair = tiny_pair()
    d_emb = pair.discriminator.electra.embeddings
    assert pair.generator.electra.embeddings is d_emb
    assert pair.generator.generator_lm_head.weight is d_emb.word_embeddings.weight
    # shared parameters are counted (and optimised) once
    names = [n for n, _ in pair.named_parameters()]
    assert len(names) == len(set(id(p) for p in pair.parameters()))


def test_auc_matches_the_pairwise_definition():
    torch.manual_seed(0)
    scores = torch.randn(200).round(decimals=1)  # with ties
    labels = (torch.rand(200) < 0.3).float()
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairwise = ((pos[:, None] > neg[None, :]).double() + 0.5 * (pos[:, None] == neg[None, :]).double()).mean()
    assert auc(scores, labels) == pytest.approx(pairwise.item(), abs=1e-9)
    assert auc(torch.tensor([0.1, 0.9]), torch.tensor([0.0, 1.0])) == 1.0
    assert auc(torch.tensor([0.1, 0.9]), torch.tensor([1.0, 1.0])) != auc(torch.tensor([0.1]), torch.tensor([1.0]))


@pytest.fixture(scope="module")
def electra_run(corpus, tmp_path_factory):
    return pretrain(tiny(corpus, tmp_path_factory.mktemp("electra") / "run"), progress=False)


def test_electra_learns_and_writes_discriminator_and_generator(electra_run):
    for name in ("config.yaml", "metrics.json", "log.jsonl", "model/config.json", "model/model.safetensors",
                 "model/tokenizer.json", "generator/config.json", "generator/model.safetensors"):
        assert (electra_run / name).exists(), name
    m = json.loads((electra_run / "metrics.json").read_text())
    assert m["objective"] == "electra" and m["generator_parameters"] > 0
    for key in ("rtd_loss", "rtd_accuracy", "rtd_auc", "replaced_share", "accuracy", "perplexity"):
        assert key in {k.split(".", 1)[1] for k in m if k.startswith("heldout.")}, key
    assert m["heldout.loss"] < m["before.loss"] - 1.0
    assert m["heldout.rtd_loss"] < m["before.rtd_loss"]
    assert m["heldout.accuracy"] > m["before.accuracy"]  # the generator's masked-token accuracy
    assert 0 < m["heldout.replaced_share"] < 0.3
    assert json.loads((electra_run / "model/config.json").read_text())["architectures"] == ["ElectraForPreTraining"]
    d, g = load_file(str(electra_run / "model/model.safetensors")), \
        load_file(str(electra_run / "generator/model.safetensors"))
    key = "electra.embeddings.word_embeddings.weight"
    assert torch.equal(d[key], g[key])  # shared while training
    assert m["parameters"] == sum(v.numel() for v in d.values())


def test_discriminator_folder_fine_tunes_in_tuneforge_train(electra_run, make_tiny_config, tmp_path):
    cfg = make_tiny_config(tmp_path / "ft")
    cfg["model"] = str(electra_run / "model")
    cfg["train"]["epochs"] = 1
    run = train(cfg, progress=False)
    assert run.metrics["test.accuracy"] >= 0 and "validation.accuracy" in run.metrics
    from tuneforge.models.backbones import load_backbone

    backbone = load_backbone(str(electra_run / "model"), ["a", "b"])
    assert type(backbone.model).__name__ == "ElectraForSequenceClassification"
    pretrained = load_file(str(electra_run / "model/model.safetensors"))
    key = "electra.encoder.layer.0.attention.self.query.weight"
    assert torch.equal(dict(backbone.model.named_parameters())[key].detach(), pretrained[key])
    assert backbone.new_parameters and all(n.startswith("classifier") for n in backbone.new_parameters)


def test_init_only_writes_the_untrained_discriminator(corpus, tmp_path):
    run = pretrain(tiny(corpus, tmp_path / "init"), init_only=True, progress=False)
    m = json.loads((run / "metrics.json").read_text())
    assert m["train.steps"] == 0 and m["heldout.loss"] == m["before.loss"]
    assert json.loads((run / "model/config.json").read_text())["model_type"] == "electra"


def test_electra_config_errors_in_the_users_words(corpus, tmp_path):
    cases = [
        ({"architecture": {"layers": 1, "hidden_size": 32, "heads": 2, "norm": "pre"}},
         "norm: pre is not available for objective: electra"),
        ({"objective": "mlm"}, "electra: applies to objective: electra"),
        ({"electra": {"generator_hidden": 64}}, "generator_hidden 64 is wider than the discriminator"),
        ({"masking": {"whole_word": True}}, "whole_word is not available for objective: electra"),
        ({"model": "minilm"}, "objective: electra pretrains from scratch"),
        ({"electra": {"generator_hiden": 16}}, 'Did you mean "generator_hidden"'),
    ]
    for extra, message in cases:
        with pytest.raises(TuneforgeError, match=message):
            pretrain(tiny(corpus, tmp_path / "bad", **extra), progress=False)
    assert not (tmp_path / "bad").exists()


def test_cli_bad_electra_key_exits_2(corpus, tmp_path, monkeypatch, capsys):
    import sys

    import yaml

    from tuneforge.cli.main import main

    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump(tiny(corpus, tmp_path / "cli")), encoding="utf-8")
    monkeypatch.setattr(sys, "argv", ["tuneforge", "pretrain", str(path), "electra.discriminator_weight=-1",
                                      "--quiet"])
    with pytest.raises(SystemExit) as info:
        main()
    err = capsys.readouterr().err
    assert info.value.code == 2 and "discriminator_weight" in err and "Traceback" not in err


def test_electra_resume_equals_uninterrupted(corpus, electra_run, tmp_path):
    """Checkpoints hold both models (the shared embeddings once); a resumed run ends with the same weights."""
    train_cfg = {**tiny(corpus, tmp_path / "run")["train"], "checkpoint_every": 10}
    cfg = {**tiny(corpus, tmp_path / "run"), "train": train_cfg}
    with pytest.raises(KeyboardInterrupt):
        pretrain(cfg, progress=False, _stop_after=15)
    pretrain(None, resume=tmp_path / "run", progress=False)
    for folder in ("model", "generator"):
        a = load_file(str(electra_run / folder / "model.safetensors"))
        b = load_file(str(tmp_path / "run" / folder / "model.safetensors"))
        assert a.keys() == b.keys()
        for key in a:
            assert torch.allclose(a[key], b[key], atol=1e-6), (folder, key)
