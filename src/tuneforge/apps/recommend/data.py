"""Read the click log and the items from CSV, check them, and split them by time without leaking the future.

    interactions.csv: user,item,label,time     label 1 = clicked, 0 = shown and not clicked
    items.csv:        item,title,description,tags

Every problem is reported with its file and line (line 1 is the header), all of them at once.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tuneforge.errors import TuneforgeError

MAX_PROBLEMS = 20  # listed in one error; the rest are counted


@dataclass(frozen=True)
class Item:
    id: str
    title: str
    description: str = ""
    tags: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """What the item tower reads: title, tags, then the description (truncated by the tokenizer)."""
        parts = [self.title, ", ".join(self.tags), self.description]
        return " | ".join(p for p in parts if p)

    @property
    def short(self) -> str:
        """What a user's history lists for this item: its title and tags."""
        return f"{self.title} ({', '.join(self.tags)})" if self.tags else self.title


@dataclass(frozen=True)
class Interaction:
    user: str
    item: str
    label: int
    time: float  # seconds (ISO dates are converted; numbers are kept as they are)
    line: int  # in the interactions file, for messages and for a stable order at equal times


@dataclass
class Split:
    """The time-based split. ``history[u]`` is user u's clicked item ids in train, oldest first."""

    train: list[Interaction]
    test: list[Interaction]
    mode: str
    cut: float | None = None  # mode time
    history: dict[str, list[str]] = field(default_factory=dict)

    def describe(self) -> dict:
        return {"mode": self.mode, "cut": self.cut, "train_rows": len(self.train), "test_rows": len(self.test),
                "test_users": len({i.user for i in self.test}),
                "test_clicks": sum(i.label for i in self.test)}


def parse_time(value: str) -> float:
    """An ISO 8601 date/time (naive = UTC) or a plain number; ValueError otherwise."""
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _rows(path: Path, what: str, required: list[str]) -> list[tuple[int, dict[str, str]]]:
    """(line, row) pairs of a CSV file whose header holds ``required``."""
    if not path.is_file():
        raise TuneforgeError(f"{what} file {path} does not exist{' (it is a folder)' if path.is_dir() else ''}; "
                             f"give a CSV file with the columns {','.join(required)}.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TuneforgeError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8.") from None
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in required if c not in header]
    if missing:
        raise TuneforgeError(f"{path} line 1: the header must name the columns {','.join(required)}; missing "
                             f"{', '.join(missing)} (found: {', '.join(header) or 'nothing'}).")
    reader.fieldnames = header
    rows = []
    for row in reader:
        if None in row:
            raise TuneforgeError(f"{path} line {reader.line_num}: more fields than the header has columns; quote "
                                 'a field that holds a comma ("a, b").')
        rows.append((reader.line_num, {k: (v or "").strip() for k, v in row.items()}))
    return rows


def _fail(path: Path, problems: list[str]) -> None:
    if problems:
        shown = problems[:MAX_PROBLEMS]
        more = f" (and {len(problems) - len(shown)} more)" if len(problems) > len(shown) else ""
        raise TuneforgeError(f"{path}: {len(problems)} problem(s){more}; fix them and run again:", shown)


def read_items(path: str | Path) -> dict[str, Item]:
    path = Path(path)
    items: dict[str, Item] = {}
    first: dict[str, int] = {}
    problems = []
    for line, row in _rows(path, "items", ["item", "title", "description", "tags"]):
        item_id, title = row["item"], row["title"]
        if not item_id:
            problems.append(f"line {line}: the item id is empty.")
        elif item_id in first:
            problems.append(f'line {line}: item "{item_id}" again (first on line {first[item_id]}); ids are unique.')
        elif not title and not row["description"]:
            problems.append(f'line {line}: item "{item_id}" has neither a title nor a description; give one.')
        else:
            first[item_id] = line
            tags = tuple(t.strip() for t in row["tags"].replace(";", ",").split(",") if t.strip())
            items[item_id] = Item(item_id, title, row["description"], tags)
    _fail(path, problems)
    if not items:
        raise TuneforgeError(f"{path}: no items; the file holds only a header.")
    return items


def read_interactions(path: str | Path, items: dict[str, Item]) -> list[Interaction]:
    path = Path(path)
    rows, problems = [], []
    for line, row in _rows(path, "interactions", ["user", "item", "label", "time"]):
        if not row["user"]:
            problems.append(f"line {line}: the user is empty.")
            continue
        if row["item"] not in items:
            problems.append(f'line {line}: item "{row["item"]}" is not in the items file; add it there or drop the '
                            "row.")
            continue
        if row["label"] not in ("0", "1"):
            problems.append(f'line {line}: label "{row["label"]}" must be 1 (clicked) or 0 (shown, not clicked).')
            continue
        try:
            time = parse_time(row["time"])
        except ValueError:
            problems.append(f'line {line}: time "{row["time"]}" is neither a number nor an ISO date such as '
                            "2024-05-01T12:00:00.")
            continue
        rows.append(Interaction(row["user"], row["item"], int(row["label"]), time, line))
    _fail(path, problems)
    if not rows:
        raise TuneforgeError(f"{path}: no interactions; the file holds only a header.")
    if not any(r.label for r in rows):
        raise TuneforgeError(f"{path}: no clicks (label 1); the recommender learns from clicks.")
    return rows


def histories(rows: list[Interaction]) -> dict[str, list[str]]:
    """Each user's clicked item ids, oldest first."""
    out: dict[str, list[str]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: (r.time, r.line)):
        if r.label:
            out[r.user].append(r.item)
    return dict(out)


def time_split(rows: list[Interaction], mode: str = "last", last_n: int = 2, cut: str | float | None = None,
               test_fraction: float = 0.2) -> Split:
    """Split by time.

    - ``last``: each user's last ``last_n`` interactions (by time, then file line) are the test; users with
      ``last_n`` or fewer stay in train. Every test row of a user is later than all of that user's train
      rows; other users' train rows may be later (as in leave-last-out evaluation generally).
    - ``time``: rows before ``cut`` train, rows at or after it test: nothing in train is later than the test.
    """
    ordered = sorted(rows, key=lambda r: (r.time, r.line))
    if mode == "last":
        by_user: dict[str, list[Interaction]] = defaultdict(list)
        for r in ordered:
            by_user[r.user].append(r)
        train, test = [], []
        for user_rows in by_user.values():
            if len(user_rows) <= last_n:
                train += user_rows
            else:
                train += user_rows[:-last_n]
                test += user_rows[-last_n:]
        split = Split(sorted(train, key=lambda r: (r.time, r.line)), sorted(test, key=lambda r: (r.time, r.line)),
                      mode)
    elif mode == "time":
        if cut is None:
            at = ordered[min(len(ordered) - 1, int(len(ordered) * (1 - test_fraction)))].time
        else:
            try:
                at = parse_time(str(cut))
            except ValueError:
                raise TuneforgeError(f'split.cut "{cut}" is neither a number nor an ISO date such as '
                                     "2024-05-01T12:00:00.") from None
        split = Split([r for r in ordered if r.time < at], [r for r in ordered if r.time >= at], mode, cut=at)
    else:
        raise TuneforgeError(f'split.mode "{mode}" is not one of: last, time.')
    if not split.test:
        raise TuneforgeError(f"The {mode} split leaves no test interactions; lower split.last_n or move split.cut "
                             "earlier.")
    if not any(r.label for r in split.train):
        raise TuneforgeError(f"The {mode} split leaves no clicks to train on; raise the share of train rows.")
    split.history = histories(split.train)
    return split


def history_text(item_ids: list[str], items: dict[str, Item], limit: int) -> str:
    """The user tower's input: the last ``limit`` clicked items, most recent first."""
    return " ; ".join(items[i].short for i in reversed(item_ids[-limit:]))
