"""Read (prompt, response) pairs from .jsonl, .json, .csv or .tsv files, every problem reported at once.

Each problem names the file, the line and the field, and says how to fix it: a missing column (with the
closest name the file has), a prompt without its answer, an empty answer, a value that is not text.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tuneforge.data.formats import RawRows, parse_delimited, parse_json, parse_json_lines, read_text
from tuneforge.data.problems import Absent, by_line, line_list, raise_problems
from tuneforge.errors import TuneforgeError, closest
from tuneforge.tasks.generation.records import Pair

_PARSERS: dict[str, Callable[[str, str, str], RawRows]] = {
    ".jsonl": parse_json_lines,
    ".json": parse_json,
    ".csv": lambda text, shown, hint: parse_delimited(text, shown, ","),
    ".tsv": lambda text, shown, hint: parse_delimited(text, shown, "\t"),
}
# Names pair datasets commonly use, suggested when the configured column is absent.
_USUAL = {"prompt": ["question", "query", "input", "instruction", "user", "text", "context"],
          "response": ["answer", "reply", "output", "completion", "assistant", "target", "label"]}


def _text(value: object) -> str | None:
    """A cell as text; None for null. Numbers become strings (a CSV answer "42"); lists and objects do not."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError("a list" if isinstance(value, list) else "a JSON object" if isinstance(value, dict)
                     else f"the value {value!r}")


def _guess(name: str, role: str, keys: list[str], used: tuple[str, str]) -> str | None:
    keys = [k for k in keys if k not in used]  # the other configured column is not a candidate
    # a usual name for the role first ("answer" for the response), then a close spelling ("promt")
    return next((k for k in keys if k.lower() in _USUAL[role]), None) or closest(name, keys)


def _suggest(name: str, role: str, keys: list[str], used: tuple[str, str], run: str | None, noun: str) -> str:
    best = _guess(name, role, keys, used)
    if run is not None:  # a trained run reads its own columns: the file has to match them
        return f'the run {run} reads its {role}s from the {noun} "{name}": ' + (
            f'did you mean "{best}"? Rename it to "{name}" in the file' if best else
            f'rename the {noun} that holds them to "{name}" in the file, or add one')
    return f'did you mean "{best}"? Rename it, or set data.{role}_column: {best}' if best else \
        f"add it, or set data.{role}_column to the {noun} that holds the {role}s"


def _absent_problem(shown: str, name: str, role: str, absent: Absent, total: int, used: tuple[str, str],
                    prompts_too: bool, run: str | None) -> str:
    """One message for every record that lacks field ``name``: a misnamed field is one mistake, not one per
    line. It names the lines (their count, the first few), the keys those records have, and the fix.
    ``prompts_too``: some of these records lack the prompt as well (so they are not just unanswered prompts)."""
    keys = sorted(absent.keys)
    where = (f'{shown} {line_list(absent.lines)}: no field "{name}" ({absent.share(total)}; they have: '
             f'{", ".join(keys) or "nothing"})')
    if role == "response" and not prompts_too and _guess(name, role, keys, used) is None:
        what = "a prompt" if len(absent.lines) == 1 else "prompts"
        return (f'{where}: {what} with no answer. Add the reference answer as "{name}" (or use `tuneforge '
                "generate --input` for prompts alone).")
    return f"{where}; {_suggest(name, role, keys, used, run, 'field')}."


def read_pairs(path: str | Path, *, prompt_column: str = "prompt", response_column: str = "response",
               require_response: bool = True, run: str | Path | None = None) -> list[Pair]:
    """Every pair of ``path``, or one :class:`TuneforgeError` listing every problem in it.

    Fields other than the two columns are kept as strings in ``Pair.meta``. With ``require_response=False``
    (prompts to answer) a missing or empty response gives ``response=None``. ``run``: the trained run folder the
    columns come from (generate, eval): a missing column is then to be renamed in the file, since
    ``data.prompt_column`` cannot change what a finished run reads.
    """
    run = str(run) if run is not None else None
    path = Path(path)
    shown = str(path)
    if not path.is_file():
        raise TuneforgeError(f"{shown}: {'is a folder, not a file' if path.is_dir() else 'file not found'} "
                             f"(looked for {path.resolve()}). Give a .jsonl, .json, .csv or .tsv file of "
                             f'"{prompt_column}" / "{response_column}" pairs.')
    parser = _PARSERS.get(path.suffix.lower())
    if parser is None:
        raise TuneforgeError(f'{shown}: unsupported file type "{path.suffix or "(no suffix)"}". Supported: '
                             f"{', '.join(_PARSERS)}.")
    hint = f'Each record needs "{prompt_column}" and "{response_column}" (e.g. {{"{prompt_column}": "How do I ' \
           f'reset my password?", "{response_column}": "Open Settings, then ..."}}).'
    raw = parser(read_text(path, shown), shown, hint)
    problems = list(raw.problems)
    used = (prompt_column, response_column)
    wanted = [(prompt_column, "prompt")] + ([(response_column, "response")] if require_response else [])
    if raw.columns is not None:  # CSV/TSV: a missing column is one mistake, reported once
        for name, role in wanted:
            if name not in raw.columns:
                problems.append(f'{shown} line {raw.header_line}: no column "{name}" (the header has: '
                                f"{', '.join(raw.columns)}); {_suggest(name, role, raw.columns, used, run, 'column')}.")
        if problems:
            raise_problems(f"{shown}: {len(problems)} problem(s); nothing was read. Fix them and run again:",
                           problems)
    pairs: list[Pair] = []
    absent: dict[tuple[str, str], Absent] = {}  # (field, role) -> the records without it
    for line, row in raw.rows:
        values: dict[str, str | None] = {}
        ok = True
        for name, role in [(prompt_column, "prompt"), (response_column, "response")]:
            try:
                values[role] = _text(row.get(name))
            except ValueError as kind:
                problems.append(f'{shown} line {line}: field "{name}" ({role}) is {kind}; it must be text.')
                ok = False
        for name, role in wanted:
            if name not in row:
                absent.setdefault((name, role), Absent()).add(line, row)
                ok = False
            elif ok and not values[role]:
                problems.append(f'{shown} line {line}: empty {role} in field "{name}". Every pair needs one: '
                                "fill it in or delete the line.")
                ok = False
        if ok:
            meta = {k: str(v) for k, v in row.items() if k not in (prompt_column, response_column) and v is not None}
            pairs.append(Pair(prompt=values["prompt"] or "", response=values["response"] or None, meta=meta))
    no_prompt = set(absent[prompt_column, "prompt"].lines) if (prompt_column, "prompt") in absent else set()
    problems += [_absent_problem(shown, name, role, record, len(raw.rows), used, bool(no_prompt & set(record.lines)),
                                 run)
                 for (name, role), record in absent.items()]
    if problems:
        problems.sort(key=by_line)
        raise_problems(f"{shown}: {len(problems)} problem(s); nothing was read. Fix them and run again:", problems)
    if not pairs:
        raise TuneforgeError(f"{shown}: no pairs (the file is empty or has only a header). {hint}")
    return pairs
