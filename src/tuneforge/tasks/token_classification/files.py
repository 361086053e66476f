"""Read tagged sentences: JSONL (``tokens`` + ``tags``, or ``text`` + character-offset ``entities``) and
CoNLL-style column files (a word and its tag per line, a blank line between sentences).

Every problem in a file is reported at once, each with the file, the line and the fix. An ``I-X`` that
continues nothing is fixed to ``B-X`` (see :mod:`bio`) and the fixes are returned as warnings.
"""

from __future__ import annotations

import json
from pathlib import Path

from tuneforge.data.formats import parse_json, parse_json_lines
from tuneforge.data.problems import Absent, Repeated, by_line, line_list, raise_problems
from tuneforge.errors import TuneforgeError, closest
from tuneforge.tasks.token_classification.bio import Span, repair, tag_problem, tags_from_spans
from tuneforge.tasks.token_classification.records import TokenExample
from tuneforge.tasks.token_classification.words import join_words, locate_words, split_words

JSON_SUFFIXES = (".jsonl", ".json")
CONLL_SUFFIXES = (".conll", ".bio", ".iob", ".txt")
SUFFIXES = JSON_SUFFIXES + CONLL_SUFFIXES
# The field names are fixed (no data.*_column option applies to token classification); names datasets
# often use instead, suggested when one is absent.
_USUAL = {"tokens": ["words", "token", "toks"], "tags": ["ner_tags", "labels", "tag", "label", "ner", "bio"],
          "text": ["sentence", "sent", "content", "string", "raw", "input"],
          "entities": ["spans", "entity", "labels", "label", "annotations", "ner"]}
_HINT = ('Each record is {"tokens": [...], "tags": [...]} or {"text": "...", "entities": [{"start": 0, "end": 4, '
         '"label": "PER"}]}.')


class _Report:
    """The problems of one file. The same problem on many lines (a tag written one wrong way throughout)
    is said once with its lines (:class:`~tuneforge.data.problems.Repeated`), not once per line."""

    def __init__(self, path: Path) -> None:
        self.path, self.fixed = path, []
        self.parsed: list[str] = []  # whole messages from the JSON parsers (file and line included)
        self.repeated = Repeated()
        self.absent: dict[str, Absent] = {}  # "tokens/text", "tags" or "entities" -> the records without it
        self.records = 0

    def missing(self, name: str, line: int, row: dict) -> None:
        self.absent.setdefault(name, Absent()).add(line, row)

    def add(self, line: int, problem: str) -> None:
        self.repeated.add(line, problem)

    def problems(self) -> list[str]:
        absent = [f"{self.path.name} {line_list(record.lines)}: {_absent_problem(name, record, self.records)}"
                  for name, record in self.absent.items()]
        return sorted(self.parsed + self.repeated.messages(self.path.name) + absent, key=by_line)

    def check(self, line: int, tags: list[str], lines: list[int] | None = None) -> list[str]:
        """Report bad tags; fix stray I- tags (noted for a warning). ``lines``: each tag's own line."""
        bad = [(tag, problem) for tag in tags if (problem := tag_problem(tag))]
        for _tag, problem in dict(bad).items():
            self.add(line, problem)
        if bad:
            return tags
        out, fixed = repair(tags)
        self.fixed.extend(f"{self.path.name} line {lines[i] if lines else line}: {tags[i]} read as {out[i]}"
                          for i in fixed)
        return out


def read_token_examples(path: str | Path, *, require_tags: bool = True) -> tuple[list[TokenExample], list[str]]:
    """The sentences of ``path`` and warnings (I- tags fixed to B-). Raises one error listing every problem."""
    path = Path(path)
    if not path.is_file():
        raise TuneforgeError(f"{path.resolve()} does not exist (or is not a file).")
    if path.suffix not in SUFFIXES:
        raise TuneforgeError(f"{path}: token classification reads {', '.join(SUFFIXES)} files (JSONL with tokens + "
                             "tags or text + entities; CoNLL columns: a word and its tag per line). Rename or "
                             "convert the file.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TuneforgeError(f"{path}: not UTF-8 ({exc}). Save it as UTF-8.") from None
    report = _Report(path)
    reader = _read_json if path.suffix in JSON_SUFFIXES else _read_conll
    examples = reader(text, report, require_tags)
    if problems := report.problems():
        raise_problems(f"{path} has {len(problems)} problem(s):", problems)
    if not examples:
        raise TuneforgeError(f"{path} holds no sentences.")
    warnings = []
    if report.fixed:
        more = f" (and {len(report.fixed) - 5} more)" if len(report.fixed) > 5 else ""
        warnings.append(f"{path}: {len(report.fixed)} I- tag(s) continued no entity and were read as B- "
                        f"(IOB1 or a typo): {'; '.join(report.fixed[:5])}{more}")
    return examples, warnings


def _read_json(text: str, report: _Report, require_tags: bool) -> list[TokenExample]:
    # The shared parsers give each record the line it starts on (also each item of a .json list), so a
    # problem repeated over many records can be grouped by line.
    parse = parse_json if report.path.suffix == ".json" else parse_json_lines
    raw = parse(text, report.path.name, _HINT)
    report.parsed += raw.problems
    report.records = len(raw.rows)
    out = []
    for number, row in raw.rows:
        example = _from_row(row, number, report, require_tags)
        if example is not None:
            out.append(example)
    return out


def _from_row(row: dict, line: int, report: _Report, require_tags: bool) -> TokenExample | None:
    if "tokens" in row:
        words, tags, text = row["tokens"], row.get("tags"), row.get("text")
        well_formed = isinstance(words, list) and words and all(isinstance(w, str) and w.strip() == w and w
                                                                 for w in words)
        if not well_formed:
            report.add(line, '"tokens" must be a non-empty list of non-empty strings without spaces')
            return None
        if tags is None:
            if require_tags:
                report.missing("tags", line, row)
                return None
        elif not isinstance(tags, list) or len(tags) != len(words):
            count = len(tags) if isinstance(tags, list) else type(tags).__name__
            report.add(line, f'{len(words)} tokens but {count} tags; give one tag per token')
            return None
        if text is not None:
            offsets = locate_words(text, words) if isinstance(text, str) else None
            if offsets is None:
                report.add(line, 'the tokens are not found in order in "text"; fix them or drop "text" (the '
                                 "tokens are then joined with spaces)")
                return None
        else:
            text, offsets = join_words(words)
        tags = report.check(line, [str(t) for t in tags]) if tags is not None else None
        return TokenExample(text, tuple(words), tuple(map(tuple, offsets)), tuple(tags) if tags else None)
    if "text" in row:
        return _from_entities(row, line, report, require_tags)
    report.missing("tokens/text", line, row)
    return None


def _rename(name: str, keys: list[str], taken: str | None = None) -> tuple[str, str] | None:
    """(field, ``name``) when the records hold a field that is probably ``name`` under another name: a name
    datasets often use, else a close spelling. Fields named right, and ``taken``, are not candidates."""
    keys = [key for key in keys if key not in _USUAL and key != taken]
    lowered = {key.lower(): key for key in keys}
    best = next((lowered[k] for k in _USUAL[name] if k in lowered), None) or closest(name, keys)
    return (best, name) if best else None


def _absent_problem(name: str, absent: Absent, total: int) -> str:
    """One message for all the records that lack a field: a misnamed field is one mistake, not one per line."""
    keys = sorted(absent.keys)
    have = f'({absent.share(total)}; they have: {", ".join(keys) or "nothing"})'
    if name == "tags":
        what = f'"tokens" without "tags" {have}; give one BIO tag per token under "tags"'
        renames = [_rename("tags", keys)]
    elif name == "entities":
        what = f'"text" without "entities" {have}; give a list of {{"start", "end", "label"}} under "entities"'
        renames = [_rename("entities", keys)]
    else:
        what = (f'no "tokens" or "text" field {have}. Token classification reads {{"tokens": [...], "tags": '
                '[...]} or {"text": "...", "entities": [...]}, under these names (data.text_column and '
                "data.label_column are for text classification)")
        words, tags = ("tokens", "tags") if _rename("tokens", keys) or not _rename("text", keys) else \
            ("text", "entities")
        renames = [first := _rename(words, keys), _rename(tags, keys, taken=first[0] if first else None)]
    listed = " and ".join(f'"{old}" to "{new}"' for old, new in filter(None, renames))
    return f"{what}: rename {listed}." if listed else f"{what}."


def _from_entities(row: dict, line: int, report: _Report, require_tags: bool) -> TokenExample | None:
    text, entities = row["text"], row.get("entities")
    if not isinstance(text, str):
        report.add(line, '"text" must be a string')
        return None
    words = split_words(text)
    if not words and require_tags:  # the tokens form refuses an empty sentence too
        report.add(line, '"text" holds no words (it is empty or only spaces); delete the line')
        return None
    if entities is None:
        if require_tags:
            report.missing("entities", line, row)
            return None
        return TokenExample(text, tuple(w for w, _, _ in words), tuple((s, e) for _, s, e in words))
    if not isinstance(entities, list):
        report.add(line, f'"entities" is {_shown(entities)}; it must be a list of {{"start": 0, "end": 3, '
                         '"label": "PER"}} objects ([] for a sentence without entities)')
        return None
    problems = [problem for number, entity in enumerate(entities, 1) for problem in _entity_problems(number, entity)]
    for problem in problems:
        report.add(line, problem)
    if problems:
        return None
    found = []
    for entity in entities:
        start, end, kind = entity["start"], entity["end"], entity["label"]
        first = [i for i, (_, s, _) in enumerate(words) if s == start]
        last = [i for i, (_, _, e) in enumerate(words) if e == end]
        if not first or not last or last[0] < first[0] or not kind or "-" in kind:
            report.add(line, f"entity {kind!r} at {start}:{end} ({text[start:end]!r}) does not start and end on "
                             "word boundaries (or its label has a dash); words are CJK characters, runs of "
                             "letters/digits, single punctuation marks")
            return None
        found.append(Span(kind, first[0], last[0] + 1))
    found.sort(key=lambda s: s.start)
    if any(a.end > b.start for a, b in zip(found, found[1:])):
        report.add(line, "entities overlap; BIO tags hold one entity per word")
        return None
    return TokenExample(text, tuple(w for w, _, _ in words), tuple((s, e) for _, s, e in words),
                        tuple(tags_from_spans(len(words), found)))


def _shown(value: object) -> str:
    """A JSON value as the file writes it, with its kind: '"2" (a string)', 'true (a boolean)'."""
    kind = ("a boolean" if isinstance(value, bool) else "a number" if isinstance(value, (int, float)) else
            "a string" if isinstance(value, str) else "null" if value is None else
            "a list" if isinstance(value, list) else "an object")
    text = json.dumps(value, ensure_ascii=False)
    text = text if len(text) <= 40 else text[:37] + "..."
    return text if value is None else f"{text} ({kind})"


def _entity_problems(number: int, entity: object) -> list[str]:
    """What is wrong with the ``number``-th entity of a line. Offsets must be JSON integers: a string
    ("2"), a float (2.0, 2.5) or a boolean (true, which Python counts as 1) is refused, not converted, as
    it usually means the file was written by a tool that lost the types, and a guess could tag the wrong
    characters without a word."""
    shape = '{"start": 0, "end": 3, "label": "PER"}'
    if not isinstance(entity, dict):
        return [f"entity {number} is {_shown(entity)}; each entity is an object such as {shape}"]
    problems = []
    for name in ("start", "end"):
        value = entity.get(name)
        if name not in entity:
            problems.append(f'entity {number} has no "{name}" (it has: {", ".join(entity) or "nothing"}); each '
                            f"entity is an object such as {shape}")
        elif type(value) is not int:
            whole = (value.strip() if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit()
                     else int(value) if isinstance(value, float) and value.is_integer() else None)
            fix = f'write "{name}": {whole}' if whole is not None else f'write "{name}" as a whole number'
            problems.append(f'entity {number}: "{name}" is {_shown(value)}; it must be a JSON integer, the '
                            f'character offset into "text": {fix}')
    label = entity.get("label")
    if not isinstance(label, str) or not label.strip():
        got = "is missing" if "label" not in entity else "is empty" if isinstance(label, str) else f"is {_shown(label)}"
        problems.append(f'entity {number}: "label" {got}; it must be the entity type as a string, e.g. "PER"')
    return problems


def _read_conll(text: str, report: _Report, require_tags: bool) -> list[TokenExample]:
    out: list[TokenExample] = []
    words: list[str] = []
    tags: list[str] = []
    lines: list[int] = []

    def flush() -> None:
        if words:
            checked = report.check(lines[0], tags, lines)
            joined, offsets = join_words(words)
            out.append(TokenExample(joined, tuple(words), tuple(offsets), tuple(checked)))
        words.clear()
        tags.clear()
        lines.clear()

    for number, line in enumerate(text.split("\n"), 1):
        columns = line.split()
        if not columns or columns[0] == "-DOCSTART-":
            flush()
            continue
        if len(columns) < 2:
            report.add(number, f"{line.strip()!r} has one column; a CoNLL line is a word and its tag (the tag "
                               "in the last column)")
            continue
        if problem := tag_problem(columns[-1]):
            report.add(number, problem)
            continue
        words.append(columns[0])
        tags.append(columns[-1])
        lines.append(number)
    flush()
    return out
