"""The knowledge base: question/answer pairs read from YAML, JSONL or CSV, or the built-in chatterbot corpus.

One entry is one question with its answer. Entries whose answers are the same text form a paraphrase group:
several ways of asking one thing. Every problem of a file is reported at once, with its line and field.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from tuneforge.errors import TuneforgeError, did_you_mean

FIELDS = ("question", "questions", "answer", "category", "id")


class KnowledgeBaseError(TuneforgeError):
    """A knowledge base file that cannot be read; the problems name the file, line and field."""


@dataclass(frozen=True)
class Entry:
    id: str
    question: str
    answer: str
    category: str = ""

    @property
    def group(self) -> str:
        """Entries with the same answer text ask the same thing."""
        return " ".join(self.answer.split())

    def to_json(self) -> dict:
        return asdict(self)


def _entries_of(record: object, where: str, stem: str, n: int, problems: list[str]) -> list[Entry]:
    """The entries of one record (a mapping) at ``where`` (file and line); problems are appended, not raised."""
    if not isinstance(record, dict):
        problems.append(f"{where}: expected a mapping with question and answer, got {type(record).__name__}")
        return []
    unknown = [k for k in record if k not in FIELDS]
    for key in unknown:
        problems.append(f'{where}: unknown field "{key}".{did_you_mean(str(key), FIELDS)}')
    answer, category = record.get("answer"), record.get("category", "")
    questions = record.get("questions")
    if "question" in record and questions is not None:
        problems.append(f'{where}: give "question" (one) or "questions" (a list), not both')
        return []
    if questions is None:
        questions = [record.get("question")]
    elif not isinstance(questions, list) or not questions:
        problems.append(f'{where}: field "questions" must be a non-empty list of texts')
        return []
    bad = False
    if not isinstance(answer, str) or not answer.strip():
        problems.append(f'{where}: field "answer" is missing or empty' if answer in (None, "")
                        else f'{where}: field "answer" must be a text, got {type(answer).__name__}')
        bad = True
    for q in questions:
        if not isinstance(q, str) or not q.strip():
            problems.append(f'{where}: field "question" is missing or empty' if q in (None, "")
                            else f'{where}: field "question" must be a text, got {type(q).__name__}')
            bad = True
    if category is None:
        category = ""
    if not isinstance(category, str):
        problems.append(f'{where}: field "category" must be a text, got {type(category).__name__}')
        bad = True
    if bad or unknown:
        return []
    base = str(record["id"]) if record.get("id") not in (None, "") else f"{stem}-{n}"
    return [Entry(base if len(questions) == 1 else f"{base}.{k}", q.strip(), answer.strip(), category.strip())
            for k, q in enumerate(questions, 1)]


def _read_yaml(path: Path, problems: list[str]) -> list[Entry]:
    text = path.read_text(encoding="utf-8")
    try:
        data, node = yaml.safe_load(text), yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise KnowledgeBaseError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', None) or exc}).") from None
    if isinstance(data, dict) and list(data) == ["entries"]:  # {entries: [...]} as well as a bare list
        data = data["entries"]
        node = node.value[0][1]
    if not isinstance(data, list):
        raise KnowledgeBaseError(f"{path}: expected a list of entries (- question: ...\\n  answer: ...), got "
                                 f"{type(data).__name__}.")
    entries: list[Entry] = []
    for n, (record, item) in enumerate(zip(data, node.value), 1):
        entries += _entries_of(record, f"{path} line {item.start_mark.line + 1}", path.stem, n, problems)
    return entries


def _read_jsonl(path: Path, problems: list[str]) -> list[Entry]:
    entries: list[Entry] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{path} line {n}: not valid JSON ({exc.msg}, column {exc.colno})")
            continue
        entries += _entries_of(record, f"{path} line {n}", path.stem, n, problems)
    return entries


def _read_csv(path: Path, problems: list[str]) -> list[Entry]:
    entries: list[Entry] = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in ("question", "answer") if c not in header]
        if missing:
            hints = "".join(did_you_mean(m, header) for m in missing) if header else ""
            raise KnowledgeBaseError(f"{path} line 1: the header lacks the column(s) {', '.join(missing)} (it has "
                                     f"{', '.join(header) or 'nothing'}).{hints}")
        for n, row in enumerate(reader, 1):
            if None in row:
                problems.append(f"{path} line {reader.line_num}: more values than the header's {len(header)} "
                                "columns (quote texts that hold commas)")
                continue
            record = {k: v for k, v in row.items() if k in FIELDS and not (k in ("category", "id") and v == "")}
            extra = [k for k in row if k not in FIELDS]
            if extra and n == 1:
                problems.append(f'{path} line 1: unknown column(s) {", ".join(extra)}; valid: question, answer, '
                                "category, id")
            entries += _entries_of(record, f"{path} line {reader.line_num}", path.stem, n, problems)
    return entries


READERS = {".yaml": _read_yaml, ".yml": _read_yaml, ".jsonl": _read_jsonl, ".csv": _read_csv}


def read_kb(path: str | Path) -> list[Entry]:
    """Every entry of a YAML, JSONL or CSV knowledge base; duplicates (same question and answer) dropped."""
    path = Path(path)
    if not path.is_file():
        raise KnowledgeBaseError(f"kb.path: {path.resolve()} does not exist or is not a file.")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise KnowledgeBaseError(f"kb.path: {path} has the suffix {path.suffix or '(none)'}; a knowledge base is "
                                 ".yaml, .yml, .jsonl or .csv.")
    problems: list[str] = []
    try:
        entries = reader(path, problems)
    except UnicodeDecodeError as exc:
        raise KnowledgeBaseError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8.") from None
    if problems:
        shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
        raise KnowledgeBaseError(f"{path}: {len(problems)} problem(s); fix them and run again:", shown)
    return _checked(dedupe(entries), str(path))


def dedupe(entries: list[Entry]) -> list[Entry]:
    seen: set[tuple[str, str]] = set()
    out = []
    for e in entries:
        key = (e.question, e.group)
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def _checked(entries: list[Entry], source: str) -> list[Entry]:
    if not entries:
        raise KnowledgeBaseError(f"{source}: the knowledge base holds no question/answer pair.")
    ids = [e.id for e in entries]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise KnowledgeBaseError(f"{source}: ids must be unique; used twice: {', '.join(twice[:10])}.")
    return entries


def chatterbot_folder() -> Path:
    spec = importlib.util.find_spec("chatterbot_corpus")  # find_spec, not import: the package is data only
    if spec is None or not spec.submodule_search_locations:
        raise KnowledgeBaseError("kb.builtin: chatterbot needs the pip package chatterbot-corpus, which is not "
                                 "installed: pip install --no-deps chatterbot-corpus==1.3.3")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def chatterbot(language: str = "english") -> list[Entry]:
    """The first exchange of every conversation of the installed corpus (later turns need the earlier ones as
    context, so they are not standalone questions); category = the file's name."""
    folder = chatterbot_folder() / language
    files = sorted(folder.glob("*.yml"))
    if not files:
        raise KnowledgeBaseError(f"kb.builtin: no chatterbot files for {language} in {folder}.")
    entries = []
    for f in files:
        data = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        for n, conversation in enumerate(data.get("conversations") or [], 1):
            if len(conversation) >= 2 and all(isinstance(t, str) and t.strip() for t in conversation[:2]):
                entries.append(Entry(f"{f.stem}-{n}", conversation[0].strip(), conversation[1].strip(), f.stem))
    return _checked(dedupe(entries), f"chatterbot {language}")


def load_kb(cfg) -> list[Entry]:
    """``cfg``: the config's ``kb:`` section."""
    return read_kb(cfg.path) if cfg.path is not None else chatterbot(cfg.language)


def groups(entries: list[Entry]) -> dict[str, list[int]]:
    """Paraphrase groups: entry indices by answer text, in first-seen order."""
    out: dict[str, list[int]] = {}
    for i, e in enumerate(entries):
        out.setdefault(e.group, []).append(i)
    return out


def hold_out(entries: list[Entry], seed: int) -> tuple[list[Entry], list[Entry]]:
    """(indexed, held_out): for each answer with 2+ distinct questions, one question (seeded) is held out as an
    evaluation query and the others stay in the index; so every held-out query's answer is still findable."""
    rng = random.Random(seed)
    out: set[int] = set()
    for members in groups(entries).values():
        questions = {entries[i].question for i in members}
        if len(questions) >= 2:
            pick = rng.choice(members)
            if sum(entries[i].question != entries[pick].question for i in members):
                out.add(pick)
    return ([e for i, e in enumerate(entries) if i not in out], [e for i, e in enumerate(entries) if i in out])
