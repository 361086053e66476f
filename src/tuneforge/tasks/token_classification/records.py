"""A tagged sentence: its text, its words with their character offsets, and one BIO tag per word."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TokenExample:
    """``words[i]`` is ``text[offsets[i][0]:offsets[i][1]]``; ``tags`` is None for unlabelled text."""

    text: str
    words: tuple[str, ...]
    offsets: tuple[tuple[int, int], ...]
    tags: tuple[str, ...] | None = None
    meta: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if len(self.words) != len(self.offsets) or (self.tags is not None and len(self.tags) != len(self.words)):
            raise ValueError(f"{len(self.words)} words, {len(self.offsets)} offsets, "
                             f"{None if self.tags is None else len(self.tags)} tags")
        # (That each word is text[start:end] holds by construction in the readers; tests check it.)

    @property
    def label(self) -> None:
        """Sentence-level label: none (lets code that counts ``Example.label`` treat both alike)."""
        return None

    def to_record(self) -> dict:
        """The JSONL line ``datasets export`` writes and :func:`read_token_examples` reads back."""
        record: dict = {"text": self.text, "tokens": list(self.words)}
        if self.tags is not None:
            record["tags"] = list(self.tags)
        return record | {k: v for k, v in self.meta.items() if k not in record}
