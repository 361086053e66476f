"""User-facing errors.

Every problem caused by the user's input (a config, a data file, a path) is raised as a
:class:`TuneforgeError`. The CLI prints its message as one paragraph, without a traceback, and exits
with code 2. Messages name the file, line or field, the bad value and the fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class TuneforgeError(Exception):
    """An error in the user's input, with a message written for the user."""

    exit_code = 2

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = list(problems or [])
        if self.problems:
            message = message.rstrip() + "\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message)


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The closest valid spelling of ``name`` among ``candidates``, or None if nothing is close. A name that
    starts exactly one candidate is taken as short for it (``rdrop`` -> ``rdrop_alpha``, ``ema`` -> ``ema_decay``)."""
    candidates = list(candidates)
    starting = [c for c in candidates if len(name) >= 3 and c.startswith(name) and c != name]
    if len(starting) == 1:
        return starting[0]
    matches = difflib.get_close_matches(name, candidates, n=1, cutoff=0.5)
    return matches[0] if matches else None


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A ' Did you mean "x"?' suffix, or a list of the valid names when nothing is close."""
    candidates = sorted(candidates)
    best = closest(name, candidates)
    if best is not None:
        return f' Did you mean "{best}"?'
    return " Valid names: " + ", ".join(candidates) + "."
