"""Read labelled examples from a user's data file: .jsonl, .json, .csv or .tsv.

Everything wrong with a file is reported in one :class:`~tuneforge.errors.TuneforgeError`, each
problem with the file, the line, the field and the fix, so one run shows the whole list.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tuneforge.data.formats import RawRows, parse_delimited, parse_json, parse_json_lines, read_text
from tuneforge.data.problems import Absent, by_line, line_list, raise_problems
from tuneforge.data.records import Example
from tuneforge.errors import TuneforgeError, closest

_PARSERS: dict[str, Callable[[str, str, str], RawRows]] = {
    ".jsonl": parse_json_lines,
    ".json": parse_json,
    ".csv": lambda text, shown, hint: parse_delimited(text, shown, ","),
    ".tsv": lambda text, shown, hint: parse_delimited(text, shown, "\t"),
}
SUPPORTED_SUFFIXES = tuple(_PARSERS)


@dataclass(frozen=True)
class _Columns:
    """Which field holds what, plus the parameter a user sets to change it (for messages); ``run``: the run
    folder these columns belong to, when a file is read for a trained run (its columns can no longer change)."""

    text: str
    text_pair: str | None
    label: str
    require_label: bool
    run: str | None = None

    def required(self) -> list[tuple[str, str, str]]:
        """(field, role, parameter) for every field each record must have."""
        fields = [(self.text, "text", "text_column")]
        if self.text_pair is not None:
            fields.append((self.text_pair, "second text", "text_pair_column"))
        if self.require_label:
            fields.append((self.label, "label", "label_column"))
        return fields

    def used(self) -> set[str]:
        return {self.text, self.label} | ({self.text_pair} if self.text_pair else set())


def read_examples(
    path: str | Path,
    *,
    text_column: str = "text",
    text_pair_column: str | None = None,
    label_column: str = "label",
    require_label: bool = True,
    run: str | Path | None = None,
) -> list[Example]:
    """Read every example of a data file, or raise one error listing every problem in it.

    The format follows the suffix: ``.jsonl`` (one JSON object per line), ``.json`` (a list of
    objects, or JSON lines), ``.csv`` and ``.tsv`` (a header row, then one example per row). Texts
    are stripped; labels become strings (JSON ``0`` becomes ``"0"``). Fields other than the text,
    text pair and label columns are kept as strings in ``Example.meta``, for slicing metrics.
    With ``require_label=False`` a missing or empty label gives ``label=None``.

    ``run``: the trained run folder the columns come from (predict, eval): a missing column is then to be
    renamed in the file, since setting ``text_column`` cannot change what a finished run reads.
    """
    path = Path(path)
    shown = str(path)
    _check_path(path, shown)
    suffix = path.suffix.lower()
    if suffix not in _PARSERS:
        raise TuneforgeError(
            f'{shown}: unsupported file type "{path.suffix or "(no suffix)"}". Supported: '
            f"{', '.join(SUPPORTED_SUFFIXES)}. Convert the file or rename it with the suffix that "
            "matches its content."
        )
    columns = _Columns(text_column, text_pair_column, label_column, require_label,
                       str(run) if run is not None else None)
    hint = _hint(suffix, columns)
    text = read_text(path, shown)
    raw = _PARSERS[suffix](text, shown, hint)

    problems = list(raw.problems)
    examples: list[Example] = []
    absent: dict[str, Absent] = {}  # required field -> the records without it
    for line, row in raw.rows:
        example = _to_example(line, row, columns, shown, problems, absent)
        if example is not None:
            examples.append(example)
    problems += _absent_problems(shown, raw, columns, absent)
    if (mixed := _mixed_label_problem(shown, raw, columns.label)) is not None:
        problems.append(mixed)

    if problems:
        problems.sort(key=by_line)
        raise_problems(
            f"{shown}: {len(problems)} problem(s); nothing was read. Fix them and run again:",
            problems,
        )
    if not examples:
        raise TuneforgeError(f"{shown}: no examples ({_why_empty(text, raw)}). {hint}")
    return examples


def _absent_problems(
    shown: str, raw: RawRows, columns: _Columns, absent: dict[str, Absent]
) -> list[str]:
    """One problem per required field that is absent, however many records lack it."""
    problems = []
    for required in columns.required():
        name = required[0]
        if raw.columns is not None and name not in raw.columns:
            # CSV/TSV: the column is missing from the header, so from every row: report it once.
            where = f"line {raw.header_line}"
            problems.append(
                _missing_problem(shown, where, "column", required, raw.columns, columns)
            )
        elif raw.columns is None and name in absent:
            where, keys = line_list(absent[name].lines), sorted(absent[name].keys)
            problems.append(_missing_problem(shown, where, "field", required, keys, columns))
    return problems


def _mixed_label_problem(shown: str, raw: RawRows, label: str) -> str | None:
    """A JSON label column holding both booleans and numbers (``true`` on some lines, ``1`` on others).

    Read as text they would be four classes, "true", "false", "1", "0", while they almost always mean
    two: files merged from two exports, or a tool that wrote 1/0 for true/false (Python itself has
    ``True == 1``). Refused, naming both kinds with their lines, rather than trained as four classes.
    Booleans with strings are not refused ("true", "false", "maybe" is a fine label set).
    """
    if raw.columns is not None:
        return None  # CSV / TSV cells are all text
    lines: dict[str, list[int]] = {"boolean": [], "number": []}
    texts: dict[str, set[str]] = {"boolean": set(), "number": set()}
    for line, row in raw.rows:
        value = row.get(label)
        kind = "boolean" if isinstance(value, bool) else "number" if isinstance(value, (int, float)) else None
        if kind is not None and value == value:  # NaN is a missing label, reported elsewhere
            lines[kind].append(line)
            texts[kind].add(_as_string(value) or "")
    if not (lines["boolean"] and lines["number"]):
        return None
    classes = sorted(texts["boolean"] | texts["number"])
    return (
        f'{shown} {line_list(lines["boolean"])}: "{label}" is a JSON boolean '
        f"({'/'.join(sorted(texts['boolean'], reverse=True))}), but on {line_list(lines['number'])} "
        f"it is a number ({'/'.join(sorted(texts['number'], reverse=True))}). Read as labels these are "
        f"{len(classes)} different classes ({', '.join(classes)}), which is rarely meant: write the "
        'labels one way (all true/false, or all 1/0), or as strings ("1", "true") if they really are '
        "different classes."
    )


def _check_path(path: Path, shown: str) -> None:
    if path.is_file():
        return
    if path.is_dir():
        raise TuneforgeError(
            f"{shown}: is a folder, not a file. Give the path of a "
            f"{', '.join(SUPPORTED_SUFFIXES)} file."
        )
    where = path.resolve()
    parent = "" if where.parent.is_dir() else f" (the folder {where.parent} does not exist either)"
    raise TuneforgeError(f"{shown}: file not found (looked for {where}){parent}. Check the path.")


def _hint(suffix: str, columns: _Columns) -> str:
    """What one good record looks like, with the user's own column names."""
    shape = {columns.text: "...", **({columns.text_pair: "..."} if columns.text_pair else {})}
    shape[columns.label] = "..."
    sample = json.dumps(shape, ensure_ascii=False)
    if suffix == ".jsonl":
        return f"Each line must be one JSON object such as {sample}."
    if suffix == ".json":
        return f"The file must be a list of JSON objects such as {sample} (or one object per line)."
    return f"The first row must name the columns ({', '.join(shape)}), then one example per row."


def _as_string(value: object) -> str | None:
    """A cell as a string; None for JSON null or NaN. Raises ValueError naming a list or object.

    Labels are class names, compared as text. A JSON boolean is read as the text the file shows,
    ``true`` / ``false`` (not Python's ``True``), so it is the same class as the string ``"true"``; CSV
    and TSV cells are text and keep it as written: a cell ``True`` is not turned into ``true``, since a
    column of ``true``, ``half-true``, ``TRUE`` may well be a deliberate label set, and guessing which
    cells are booleans would merge classes without a word. Where two spellings of one value meet, the
    checks say so instead: one label written in several cases (validate.py) and a validation or test
    label that only the case tells from a train label (with a note on how JSON booleans are read), and a
    JSON file whose label column mixes booleans and numbers (``true`` and ``1``, see
    :func:`_mixed_label_problem`).
    """
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # pandas writes int labels as 1.0 once a column has a NaN
    if isinstance(value, (int, float)):
        return str(value)
    raise ValueError("a list" if isinstance(value, list) else "a JSON object")


def _to_example(
    line: int,
    row: dict[str, object],
    columns: _Columns,
    shown: str,
    problems: list[str],
    absent: dict[str, Absent],
) -> Example | None:
    """Convert one row, appending its problems; None when the row is unusable.

    Absent required fields go to ``absent`` rather than ``problems``: the caller reports them
    once per field (a misspelled column is one mistake, not one per line).
    """
    ok = True
    values: dict[str, str | None] = {}
    for name in dict.fromkeys(n for n in (columns.text, columns.text_pair, columns.label) if n):
        try:
            value = _as_string(row.get(name))
        except ValueError as kind:
            problems.append(f'{shown} line {line}: "{name}" is {kind}; it must be a string.')
            ok = False
            continue
        values[name] = value.strip() if value is not None else None
    for name, role, _ in columns.required():
        if name not in row:
            absent.setdefault(name, Absent()).add(line, row)
            ok = False
        elif name in values and not values[name]:
            problems.append(
                f'{shown} line {line}: empty {role} in "{name}". Every example needs one: fill it '
                "in or delete the line."
            )
            ok = False
    if not ok:
        return None
    meta = {key: _meta_string(value) for key, value in row.items() if key not in columns.used()}
    return Example(
        text=values[columns.text] or "",
        label=values.get(columns.label) or None,
        text_pair=values.get(columns.text_pair) if columns.text_pair else None,
        meta={key: value for key, value in meta.items() if value is not None},
    )


def _meta_string(value: object) -> str | None:
    try:
        return _as_string(value)
    except ValueError:
        return json.dumps(value, ensure_ascii=False)  # nested values stay readable and parseable


def _missing_problem(
    shown: str,
    where: str,
    noun: str,
    required: tuple[str, str, str],
    present: list[str],
    columns: _Columns,
) -> str:
    """The message for a required field absent from a header or from some JSON objects."""
    name, role, parameter = required
    best = _guess(name, role, [key for key in present if key not in columns.used()])
    if columns.run is not None:  # the run was trained on its columns: the file must use them
        fix = f'The run {columns.run} reads its {role}s from the {noun} "{name}": ' + (
            f'did you mean "{best}"? Rename it to "{name}" in the file.'
            if best
            else f'rename the {noun} that holds them to "{name}" in the file, or add one.'
        )
    else:
        # a config says data.text_column; a call to read_examples says text_column=: name both
        fix = (
            f'Did you mean "{best}"? Rename it to "{name}" or set data.{parameter}={best} (in the config or on the '
            f'command line; {parameter}="{best}" when calling read_examples).'
            if best
            else f"Add it, or set data.{parameter} ({parameter}= when calling read_examples) to the {noun} that "
            f"holds the {role}s."
        )
    owner = "the header has" if noun == "column" else "the objects have"
    return (
        f'{shown} {where}: no {noun} "{name}" ({owner}: {", ".join(present) or "nothing"}). {fix}'
    )


# Names datasets commonly use for each role, to suggest when the configured one is absent.
_USUAL_NAMES = {
    "text": "sentence sentence1 review content tweet comment body question query document input "
    "text_a".split(),
    "second text": "sentence2 text_b hypothesis answer context passage".split(),
    "label": "labels sentiment category class target intent y gold_label polarity output".split(),
}


def _guess(name: str, role: str, keys: list[str]) -> str | None:
    """The key the user probably meant: a close spelling, else a usual name for the role."""
    best = closest(name, keys)
    if best is not None:
        return best
    lowered = {key.lower(): key for key in keys}
    return next((lowered[usual] for usual in _USUAL_NAMES[role] if usual in lowered), None)


def _why_empty(text: str, raw: RawRows) -> str:
    if not text.strip():
        return "the file is empty"
    if raw.columns is not None:
        return "the file has a header row but no data rows"
    return "the file holds no JSON objects"
