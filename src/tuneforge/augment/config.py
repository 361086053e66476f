"""The ``augment:`` config section: EDA-style edits and an optional back-translation hook."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from tuneforge.config.base import StrictModel

Operation = Literal["synonym", "insert", "swap", "delete"]


class AugmentConfig(StrictModel):
    """Add edited copies of each training example (Wei & Zou 2019, "EDA"; docs/FEWSHOT.md#augmentation)."""

    copies: int = Field(4, ge=0, description="EDA copies per training example (each made by one operation).")
    operations: list[Operation] = Field(["synonym", "insert", "swap", "delete"],
                                        description="EDA operations, used in turn: synonym (replace words), insert "
                                                    "(a synonym of a word at a random place), swap (two words), "
                                                    "delete (each word with probability alpha).")
    alpha: float = Field(0.1, gt=0, le=0.5, description="Share of a text's words each operation changes (EDA's "
                                                        "alpha; at least one word).")
    synonyms: int = Field(5, ge=1, description="Nearest neighbours of a word in the model's input embeddings that "
                                               "count as its synonyms.")
    min_similarity: float = Field(0.4, ge=-1, le=1, description="Cosine similarity a neighbour needs to count as "
                                                                 "a synonym.")
    back_translate: str | None = Field(None, description='"module:function" mapping a list of texts to a list of '
                                                         "texts (e.g. English -> German -> English with a "
                                                         "translation model you have); one more copy per example.")
    seed: int = Field(0, description="Added to train.seed: which words are edited.")

    @field_validator("operations")
    @classmethod
    def _some(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("list at least one operation (synonym, insert, swap, delete), or set copies: 0")
        return value

    @field_validator("back_translate")
    @classmethod
    def _module_function(cls, value: str | None) -> str | None:
        if value is not None and (value.count(":") != 1 or not all(value.split(":"))):
            raise ValueError(f'"{value}" is not "module:function", e.g. "my_translators:round_trip"')
        return value
