"""What every built-in dataset shares: finding its package, cleaning, and the fixed split."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from pathlib import Path

from tuneforge.data.records import DatasetSplits, Example
from tuneforge.data.splits import stratified_split
from tuneforge.errors import TuneforgeError

# The split of a built-in dataset is fixed, independent of the training seed, so that every run
# reports numbers on the same test set and results stay comparable across runs and methods.
SPLIT_SEED = 1234
TEST_SIZE = 2000
VALIDATION_SIZE = 1000


def package_folder(package: str) -> Path | None:
    """The installed folder of ``package``, found without importing it (some fail on import)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def package_file(package: str, relative: str, install: str) -> Path:
    """A data file shipped inside an installed pip package."""
    folder = package_folder(package)
    if folder is None:
        raise TuneforgeError(
            f'The package "{package}" is not installed. Install it with: {install}'
        )
    path = folder / relative
    if not path.is_file():
        raise TuneforgeError(
            f"{path}: not found in the installed {package} package (a different version?). "
            f"Reinstall it with: {install}"
        )
    return path


def normalise_space(text: str) -> str:
    """Collapse runs of whitespace (tabs, newlines, carriage returns inside tweets) to one space."""
    return " ".join(text.split())


def deduplicate(examples: Iterable[Example]) -> list[Example]:
    """Keep the first example of each text; drop every text that appears with two labels.

    A text labelled both ways is noise that no model can fit, and keeping either copy would
    teach a coin flip; duplicates would otherwise leak between train and test.
    """
    first: dict[str, Example] = {}
    labels: dict[str, set[str | None]] = {}
    for example in examples:
        first.setdefault(example.text, example)
        labels.setdefault(example.text, set()).add(example.label)
    return [example for text, example in first.items() if len(labels[text]) == 1]


def fixed_splits(
    examples: list[Example], *, name: str, labels: Iterable[str], source: str
) -> DatasetSplits:
    """The stratified test / validation / train split every run of a built-in dataset uses."""
    train, validation, test = stratified_split(
        examples, validation=VALIDATION_SIZE, test=TEST_SIZE, seed=SPLIT_SEED
    )
    return DatasetSplits(train, validation, test, labels=list(labels), name=name, source=source)
