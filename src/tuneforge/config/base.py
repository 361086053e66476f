"""Strict config base: unknown keys and wrong types are errors, never silently accepted."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A config section. Fields carry their defaults and help text (``Field(description=...)``)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)
