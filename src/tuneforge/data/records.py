"""The records every data source produces: labelled examples and the splits of a dataset."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Example:
    """One text (or text pair) with its label. ``label`` is None for unlabelled inputs."""

    text: str
    label: str | None = None
    text_pair: str | None = None
    meta: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


@dataclass
class DatasetSplits:
    """Train / validation / test examples and the label names (index = class id)."""

    train: list[Example]
    validation: list[Example]
    test: list[Example]
    labels: list[str]
    name: str = "custom"
    source: str = ""  # where the data came from, in words (file paths or package)
