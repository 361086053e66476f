"""Low-level parsers for the data file formats: each turns file text into numbered raw rows.

The parsers know nothing about columns or labels; they only report where each record starts
(1-based line of the file, so the user can jump to it) and which lines could not be parsed.
:mod:`tuneforge.data.files` turns the raw rows into :class:`~tuneforge.data.records.Example`.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from tuneforge.errors import TuneforgeError


@dataclass
class RawRows:
    """The records of one file before validation.

    ``rows`` holds ``(line, record)`` pairs for the records that parsed to an object; the others
    are already described in ``problems``. ``columns`` is the header of a CSV/TSV file, None for
    JSON, where every object may carry its own keys.
    """

    rows: list[tuple[int, dict[str, object]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    columns: list[str] | None = None
    header_line: int = 1


def read_text(path: Path, shown: str) -> str:
    """The file decoded as UTF-8; a byte-order mark (Excel writes one) is dropped."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise TuneforgeError(
            f"{shown} line {line}: not UTF-8 text (cannot decode byte 0x{data[err.start]:02x}). "
            "Save the file as UTF-8 (in Excel: 'CSV UTF-8'; in pandas: encoding='utf-8')."
        ) from None


def _kind(value: object) -> str:
    """How a JSON value is called in messages ("a list", "a string", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "a JSON object"


def _check_object(line: int, value: object, shown: str, hint: str, rows: RawRows) -> None:
    if isinstance(value, dict):
        rows.rows.append((line, value))
        return
    preview = json.dumps(value, ensure_ascii=False)
    preview = preview if len(preview) <= 40 else preview[:37] + "..."
    rows.problems.append(
        f"{shown} line {line}: expected a JSON object, got {_kind(value)} ({preview}). {hint}"
    )


def parse_json_lines(text: str, shown: str, hint: str) -> RawRows:
    """One JSON object per line; blank lines are skipped.

    Lines are split on "\\n" only: ``str.splitlines`` would also split on U+2028 and other
    separators that ``json.dumps(ensure_ascii=False)`` leaves unescaped inside strings.
    """
    rows = RawRows()
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            rows.problems.append(
                f"{shown} line {number}: not valid JSON ({err.msg} at column {err.colno}). {hint}"
            )
            continue
        _check_object(number, value, shown, hint, rows)
    if rows.problems and text.lstrip().startswith("["):
        # A JSON list saved as .jsonl: one message, not one per line of a pretty-printed list.
        listed = parse_json(text, shown, hint)
        return RawRows(problems=[
            f"{shown} line 1: the file is one JSON list [...], not one JSON object per line. Rename it to .json "
            "(a list of objects is read from .json files), or write one object per line.", *listed.problems])
    return rows


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def parse_json(text: str, shown: str, hint: str) -> RawRows:
    """A JSON list of objects; a file that does not start with "[" is read as JSON lines.

    The list is walked item by item with ``raw_decode`` (instead of one ``json.loads``) so that
    every item keeps the line it starts on for error messages.
    """
    start = _skip_space(text, 0)
    if not text.startswith("[", start):
        rows = parse_json_lines(text, shown, hint)
        if rows.problems:
            rows.problems = _one_object_problem(text, shown, hint) or rows.problems
        return rows

    rows = RawRows()
    decoder = json.JSONDecoder()
    line, counted = (
        1,
        0,
    )  # line number of text[counted], advanced incrementally (files can be large)
    i = _skip_space(text, start + 1)
    if text.startswith("]", i):
        i += 1
    else:
        while True:
            line += text.count("\n", counted, i)
            counted = i
            try:
                value, i = decoder.raw_decode(text, i)
            except json.JSONDecodeError as err:
                rows.problems.append(
                    f"{shown} line {err.lineno}: not valid JSON ({err.msg} at column {err.colno}). "
                    f"{hint}"
                )
                return rows
            _check_object(line, value, shown, hint, rows)
            i = _skip_space(text, i)
            if text.startswith(",", i):
                i = _skip_space(text, i + 1)
                continue
            if text.startswith("]", i):
                i += 1
                break
            line += text.count("\n", counted, i)
            counted = i
            rows.problems.append(
                f"{shown} line {line}: not valid JSON (expected ',' or ']' after an item). {hint}"
            )
            return rows
    if _skip_space(text, i) < len(text):
        line += text.count("\n", counted, i)
        rows.problems.append(f"{shown} line {line}: unexpected text after the closing ']'.")
    return rows


def _one_object_problem(text: str, shown: str, hint: str) -> list[str] | None:
    """A clearer message when a .json file holds one (pretty-printed) object instead of a list."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict):
        return None
    lists = [key for key, item in value.items() if isinstance(item, list)]
    where = (
        f' The examples seem to be the list under "{lists[0]}": save that list alone.'
        if lists
        else ""
    )
    return [
        f"{shown} line 1: the file holds one JSON object, not a list of examples.{where} "
        f"Write a list [{{...}}, {{...}}] or one object per line (.jsonl). {hint}"
    ]


def parse_delimited(text: str, shown: str, delimiter: str) -> RawRows:
    """CSV (comma, double-quote quoting) or TSV (tab, no quoting) with a header row.

    TSV is read without quote handling, as the format defines it: datasets such as GLUE ship TSV
    files whose texts contain unbalanced double quotes, which a quoting reader would glue together
    with the following lines. Line numbers are physical lines, so a quoted CSV field spanning
    several lines still points at the line where its record starts.
    """
    is_tsv = delimiter == "\t"
    reader = csv.reader(
        io.StringIO(text, newline=""),
        delimiter=delimiter,
        quoting=csv.QUOTE_NONE if is_tsv else csv.QUOTE_MINIMAL,
    )
    rows = RawRows()
    end = 0  # physical line on which the previous record ended
    try:
        for record in reader:
            start, end = end + 1, reader.line_num
            if not record or (len(record) == 1 and not record[0].strip()):
                continue  # blank line
            if rows.columns is None:
                rows.columns = [name.strip() for name in record]
                rows.header_line = start
                separator = _separator_problem(rows.columns, shown, start, delimiter)
                if separator is not None:
                    # Another separator: every column and row check would only repeat this one mistake.
                    return RawRows(problems=[separator])
                rows.problems += _header_problems(rows.columns, shown, start)
                continue
            if len(record) != len(rows.columns):
                fix = (
                    "A text may not contain a tab in a .tsv file."
                    if is_tsv
                    else 'Put texts that contain commas in double quotes ("like, this").'
                )
                fields = f"{len(record)} field" + ("" if len(record) == 1 else "s")
                rows.problems.append(
                    f"{shown} line {start}: {fields} but the header has "
                    f"{len(rows.columns)} ({', '.join(rows.columns)}). {fix}"
                )
                continue
            rows.rows.append((start, dict(zip(rows.columns, record, strict=True))))
    except csv.Error as err:
        rows.problems.append(
            f"{shown} line {reader.line_num}: cannot parse the CSV ({err}). A double quote that is "
            "opened and never closed turns the rest of the file into one field; double the quotes "
            'inside a quoted text ("she said ""hi""").'
        )
    return rows


def _header_problems(columns: list[str], shown: str, line: int) -> list[str]:
    duplicates = sorted({name for name in columns if columns.count(name) > 1})
    if duplicates:
        return [
            f"{shown} line {line}: the header repeats the column(s) {', '.join(duplicates)}; "
            "give every column a distinct name."
        ]
    return []


def _separator_problem(columns: list[str], shown: str, line: int, delimiter: str) -> str | None:
    """A one-column header holding another separator: Excel in many locales saves CSV with ";"."""
    others = [sep for sep in (";", "\t", ",", "|") if sep != delimiter and sep in columns[0]]
    if len(columns) != 1 or not others:
        return None
    expected = "a tab" if delimiter == "\t" else "a comma"
    return (
        f"{shown} line {line}: the header is one column ({columns[0]!r}); the file seems "
        f"separated by {others[0]!r}, not {expected}. Save it with {expected} between columns "
        "(or use .csv for commas, .tsv for tabs)."
    )
