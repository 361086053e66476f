"""EDA augmentation: seeded and deterministic, each operation does what it says, stop words stay, the model's
embedding neighbours serve as synonyms, and a bad back-translation hook is a clear error."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import torch

from tuneforge.augment import AugmentConfig, augment_examples
from tuneforge.augment.eda import STOP_WORDS, eda
from tuneforge.augment.hook import back_translate, load_translator
from tuneforge.augment.synonyms import EmbeddingSynonyms, embedding_synonyms
from tuneforge.data.records import Example
from tuneforge.errors import TuneforgeError

TEXT = "the flight was late and the crew was rude but the seat was great"
SYN = {w: [w.upper()] for w in TEXT.split()}  # a source that offers a "synonym" for every word, stop words too


class Dict:
    def __init__(self, table):
        self.table = table

    def get(self, word):
        return self.table.get(word, [])


@pytest.mark.parametrize("op", ["synonym", "insert", "swap", "delete"])
def test_seeded_and_deterministic(op):
    a = [eda(TEXT, op, 0.2, random.Random(5), Dict(SYN)) for _ in range(3)]
    assert a[0] == a[1] == a[2] and a[0] != TEXT
    others = {eda(TEXT, op, 0.2, random.Random(s), Dict(SYN)) for s in range(10)}
    assert len(others) > 1


def test_operations():
    words = TEXT.split()
    swapped = eda(TEXT, "swap", 0.2, random.Random(0), Dict(SYN)).split()
    assert Counter(swapped) == Counter(words) and swapped != words
    deleted = eda(TEXT, "delete", 0.3, random.Random(0), Dict(SYN)).split()
    assert 0 < len(deleted) < len(words) and all(w in words for w in deleted)
    inserted = eda(TEXT, "insert", 0.2, random.Random(0), Dict(SYN)).split()
    assert len(inserted) == len(words) + int(0.2 * len(words))
    replaced = eda(TEXT, "synonym", 0.2, random.Random(0), Dict(SYN)).split()
    changed = [(a, b) for a, b in zip(words, replaced) if a != b]
    assert len(replaced) == len(words) and len(changed) == int(0.2 * len(words))


def test_stop_words_never_replaced_nor_inserted():
    for seed in range(20):
        for op in ("synonym", "insert"):
            out = eda(TEXT, op, 0.5, random.Random(seed), Dict(SYN)).split()
            new = [w for w in out if w not in TEXT.split()]
            assert all(w.lower() not in STOP_WORDS for w in new)
            assert not {w.upper() for w in STOP_WORDS} & set(new)  # no stop word was the source either
    # only stop words: nothing to replace
    assert eda("the and was", "synonym", 0.5, random.Random(0), Dict({"the": ["x"]})) == "the and was"


def test_punctuation_kept_around_a_synonym():
    out = eda("late!", "synonym", 0.5, random.Random(0), Dict({"late": ["delayed"]}))
    assert out == "delayed!"


def test_embedding_neighbours():
    words = ["good", "great", "bad", "table", "the"]
    vectors = torch.tensor([[1.0, 0.1, 0], [0.9, 0.2, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 0.1, 0]])
    source = EmbeddingSynonyms(words, vectors, k=2, min_similarity=0.5)
    assert source.get("good") == ["the", "great"]  # most similar first; "table" is below min_similarity
    assert source.get("the") == []  # stop word
    assert source.get("missing") == []


def test_embedding_synonyms_of_a_model_folder(tiny_bert):
    source = embedding_synonyms(str(tiny_bert), k=3, min_similarity=-1.0)
    found = source.get("late")
    assert len(found) == 3 and "late" not in found
    assert all(w.isalpha() and w not in STOP_WORDS for w in found)


def test_augment_examples(tiny_bert):
    examples = [Example("the flight was late again", "negative"), Example("great crew thanks", "positive")]
    cfg = AugmentConfig(copies=4, min_similarity=-1.0)
    out = augment_examples(examples, cfg, str(tiny_bert), seed=1)
    assert out[:2] == examples
    assert len(out) > 2 and all(e.meta["augmented"] in cfg.operations for e in out[2:])
    assert Counter(e.label for e in out[2:]) == {"negative": sum(e.label == "negative" for e in out[2:]),
                                                "positive": sum(e.label == "positive" for e in out[2:])}
    for copy in out[2:]:  # each copy keeps the label of the example it came from
        source = next(e for e in examples if e.label == copy.label)
        assert copy.text != source.text
    assert out == augment_examples(examples, cfg, str(tiny_bert), seed=1)
    assert [e.text for e in out] != [e.text for e in augment_examples(examples, cfg, str(tiny_bert), seed=2)]


def test_bad_back_translation_hook(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_translators.py").write_text("def short(texts):\n    return texts[:1]\n")
    with pytest.raises(TuneforgeError, match="cannot import the module"):
        load_translator("nope_module_xyz:f")
    with pytest.raises(TuneforgeError, match='no function "missing"'):
        load_translator("my_translators:missing")
    with pytest.raises(TuneforgeError, match="list of 2 strings"):
        back_translate(["a", "b"], load_translator("my_translators:short"), "my_translators:short")
    with pytest.raises(ValueError, match="module:function"):
        AugmentConfig(back_translate="no_colon")
