"""Report many data problems in one error, so the user fixes a file in one pass, not ten runs."""

from __future__ import annotations

import re
from typing import NoReturn

from tuneforge.errors import TuneforgeError

MAX_PROBLEMS = 10  # beyond this a list stops helping: the rest are usually the same mistake

_LINE = re.compile(r" lines? (\d+)")


def by_line(problem: str) -> int:
    """Sort key: the first line number a problem names (problems without one come first)."""
    match = _LINE.search(problem)
    return int(match.group(1)) if match else 0


def raise_problems(message: str, problems: list[str]) -> NoReturn:
    """Raise one :class:`TuneforgeError` listing at most ``MAX_PROBLEMS`` problems."""
    shown = problems[:MAX_PROBLEMS]
    if len(problems) > MAX_PROBLEMS:
        shown.append(f"... and {len(problems) - MAX_PROBLEMS} more")
    raise TuneforgeError(message, shown)
