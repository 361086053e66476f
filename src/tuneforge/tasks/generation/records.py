"""A (prompt, response) pair: what the model reads and the answer it should write."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Pair:
    """``response`` is None for a prompt to answer (prediction); ``meta`` holds the other fields of its record
    (the built-in dataset: ``language``, ``category``)."""

    prompt: str
    response: str | None = None
    meta: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def label(self) -> None:
        """Sentence-level label: none (lets code that counts ``Example.label`` treat every record alike)."""
        return None

    def to_record(self) -> dict:
        """The JSONL line ``datasets export`` writes and :func:`~.files.read_pairs` reads back."""
        record: dict = {"prompt": self.prompt}
        if self.response is not None:
            record["response"] = self.response
        return record | {k: v for k, v in self.meta.items() if k not in record}
