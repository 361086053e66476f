"""One incoming item, checked at the boundary: ``{"id", "time", "text", "source"?, "topic"?}``."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

from tuneforge.errors import TuneforgeError

FIELDS = ("id", "time", "text", "source", "topic")
# Stream time is the newest item's time: one item dated years ahead (a typo, a wrong unit) would move every
# window past all real items and silence the rules for good, so items this far past the clock are refused.
MAX_AHEAD = timedelta(days=1)


def parse_time(value: Any) -> datetime:
    """ISO 8601 (``2015-02-24T11:35:52Z``, with or without an offset) or Unix seconds; naive UTC."""
    if isinstance(value, bool):
        raise ValueError("time must be an ISO 8601 string or Unix seconds, not true/false")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError(f"time {value} is not a number of Unix seconds; write e.g. 1424777752 or "
                             "2015-02-24T11:35:52Z")
        try:
            return datetime.fromtimestamp(float(value), timezone.utc).replace(tzinfo=None)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"time {value} is out of range as Unix seconds (years 1-9999; milliseconds? divide "
                             "by 1000); write e.g. 1424777752 or 2015-02-24T11:35:52Z") from None
    if not isinstance(value, str) or not value.strip():
        raise ValueError("time must be an ISO 8601 string (2015-02-24T11:35:52Z) or Unix seconds")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f'time "{value[:40]}" is not ISO 8601; write e.g. 2015-02-24T11:35:52Z') from None
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
        except OverflowError:
            raise ValueError(f'time "{value[:40]}" is out of range in UTC (years 1-9999)') from None
    return parsed


def _check_chars(field: str, value: str) -> None:
    """Text every database stores: no lone surrogate (JSON "\\ud800") and no NUL, which PostgreSQL refuses."""
    for i, ch in enumerate(value):
        if ch == "\x00" or "\ud800" <= ch <= "\udfff":
            raise ValueError(f"{field} has the character U+{ord(ch):04X} at position {i}, which cannot be stored "
                             f"(a NUL or half of a surrogate pair); remove it or send valid UTF-8")


def check_item(raw: Any) -> dict[str, Any]:
    """The row to store, or ValueError naming the field and the fix."""
    if not isinstance(raw, dict):
        raise ValueError(f"an item must be a JSON object with id, time, text (and source, topic), not "
                         f"{type(raw).__name__}")
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)}; an item has {', '.join(FIELDS)}")
    missing = [f for f in ("id", "time", "text") if raw.get(f) in (None, "")]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}; every item needs id, time and text")
    item_id = raw["id"]
    if isinstance(item_id, bool) or not isinstance(item_id, (str, int)) or len(str(item_id)) > 200:
        raise ValueError("id must be a string or an integer of at most 200 characters")
    if not isinstance(raw["text"], str):
        raise ValueError("text must be a string")
    for field in ("source", "topic"):
        if raw.get(field) is not None and (not isinstance(raw[field], str) or len(raw[field]) > 100):
            raise ValueError(f"{field} must be a string of at most 100 characters")
    for field in ("id", "text", "source", "topic"):
        if isinstance(raw.get(field), str):
            _check_chars(field, raw[field])
    time = parse_time(raw["time"])
    if time > datetime.now(timezone.utc).replace(tzinfo=None) + MAX_AHEAD:
        raise ValueError(f"time {time.isoformat()}Z is in the future (more than a day after the clock's "
                         f"{datetime.now(timezone.utc):%Y-%m-%dT%H:%MZ}); an item from the future would move "
                         "the stream's windows past every real item; fix the time (Unix seconds, not "
                         "milliseconds)")
    return {"id": str(item_id), "time": time, "text": raw["text"],
            "source": raw.get("source") or "unknown", "topic": raw.get("topic") or None}


def check_items(raws: list[Any], where: str = "item") -> list[dict[str, Any]]:
    """Every item checked; all problems reported at once."""
    rows, problems = [], []
    for i, raw in enumerate(raws):
        try:
            rows.append(check_item(raw))
        except ValueError as exc:
            problems.append(f"{where} {i}: {exc}")
    if problems:
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise TuneforgeError(f"{len(problems)} of {len(raws)} items cannot be stored; nothing was stored{more}:",
                             problems[:10])
    return rows
