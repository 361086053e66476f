"""Report many data problems in one error, so the user fixes a file in one pass, not ten runs.

The same mistake on many lines (a misspelled field, a tag written one wrong way) is one problem: it is
said once, with the number of lines and the first few of them (:func:`line_list`, :class:`Repeated`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NoReturn

from tuneforge.errors import TuneforgeError

MAX_PROBLEMS = 10  # beyond this a list stops helping: the rest are usually the same mistake
LINES_SHOWN = 5  # line numbers named for a problem repeated on many lines; the rest are counted

_LINE = re.compile(r" lines? (\d+)")


def by_line(problem: str) -> int:
    """Sort key: the first line number a problem names (problems without one come first)."""
    match = _LINE.search(problem)
    return int(match.group(1)) if match else 0


def line_list(numbers: list[int]) -> str:
    """Where a problem occurs: 'line 7', 'lines 2, 3, 9', or 'lines 2, 3, 9, 11, 14 and 4,995 more (5,000
    lines)' when there are more than :data:`LINES_SHOWN`."""
    if len(numbers) == 1:
        return f"line {numbers[0]}"
    head = ", ".join(map(str, numbers[:LINES_SHOWN]))
    rest = len(numbers) - LINES_SHOWN
    return f"lines {head}" + (f" and {rest:,} more ({len(numbers):,} lines)" if rest > 0 else "")


class Repeated:
    """Problems collected line by line and reported once each: lines with the same problem text are
    grouped into one message naming all of them (:func:`line_list`), in order of first occurrence."""

    def __init__(self) -> None:
        self._lines: dict[str, list[int]] = {}

    def add(self, line: int, problem: str) -> None:
        self._lines.setdefault(problem, []).append(line)

    def __len__(self) -> int:
        return len(self._lines)

    def messages(self, shown: str) -> list[str]:
        """``"{shown} lines 3, 7 and 12: {problem}"``, one per distinct problem."""
        return [f"{shown} {line_list(lines)}: {problem}" for problem, lines in self._lines.items()]


@dataclass
class Absent:
    """The records that lack one field: their lines, and the keys they have instead (to suggest the
    field the user meant). A misnamed field is one mistake, reported once, not once per record."""

    lines: list[int] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)

    def add(self, line: int, record: dict) -> None:
        self.lines.append(line)
        self.keys.update(record)

    def share(self, total: int) -> str:
        """'every record' or '3 of 40 records'."""
        return "every record" if len(self.lines) == total else f"{len(self.lines):,} of {total:,} records"


def raise_problems(message: str, problems: list[str]) -> NoReturn:
    """Raise one :class:`TuneforgeError` listing at most ``MAX_PROBLEMS`` problems."""
    shown = problems[:MAX_PROBLEMS]
    if len(problems) > MAX_PROBLEMS:
        shown.append(f"... and {len(problems) - MAX_PROBLEMS} more")
    raise TuneforgeError(message, shown)
