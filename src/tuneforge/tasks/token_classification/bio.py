"""BIO tags (Ramshaw & Marcus, 1995; the IOB2 form of CoNLL-2003 NER): ``B-TYPE`` begins an entity,
``I-TYPE`` continues it, ``O`` is outside any entity.

Checks are strict where a tag cannot be understood (``PER``, ``B_PER``, ``S-PER``: an error naming the
file, line and tag) and forgiving where the intent is clear: an ``I-TYPE`` that continues nothing (at the
start, after ``O`` or after another type, as in the older IOB1 files) begins an entity, so it is *fixed* to
``B-TYPE`` and the fix is reported as a warning, never silently.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """Entity over words ``start`` .. ``end - 1``."""

    type: str
    start: int
    end: int


def tag_problem(tag: str) -> str | None:
    """Why ``tag`` is not a BIO tag, or None if it is one."""
    if tag == "O":
        return None
    prefix, dash, kind = tag.partition("-")
    if dash and prefix in ("B", "I") and kind.strip() == kind and kind:
        return None
    if dash and prefix in ("E", "S", "L", "U"):
        return (f'tag "{tag}" is BIOES/BILOU; tuneforge reads BIO: write S- as B- and E- (or L-) as I-, '
                "U- as B-")
    if tag in ("B", "I"):
        return f'tag "{tag}" has no entity type; write {tag}-PER, {tag}-LOC, ...'
    return f'tag "{tag}" is not a BIO tag; use O, B-TYPE or I-TYPE (e.g. B-PER, I-PER)'


def repair(tags: list[str]) -> tuple[list[str], list[int]]:
    """Tags with every ``I-X`` that continues nothing turned into ``B-X``, and the positions fixed."""
    out, fixed = list(tags), []
    for i, tag in enumerate(tags):
        if tag.startswith("I-") and (i == 0 or out[i - 1][2:] != tag[2:]):
            out[i] = "B-" + tag[2:]
            fixed.append(i)
    return out, fixed


def spans(tags: list[str]) -> list[Span]:
    """The entities of a tag sequence. A stray ``I-X`` begins an entity (as :func:`repair` and seqeval's
    default mode read it), so predicted sequences need no cleaning first."""
    found: list[Span] = []
    kind, start = None, 0
    for i, tag in enumerate([*tags, "O"]):
        continues = kind is not None and tag == f"I-{kind}"
        if continues:
            continue
        if kind is not None:
            found.append(Span(kind, start, i))
            kind = None
        if tag.startswith(("B-", "I-")):
            kind, start = tag[2:], i
    return found


def tags_from_spans(n_words: int, entity_spans: list[Span]) -> list[str]:
    tags = ["O"] * n_words
    for span in entity_spans:
        tags[span.start] = f"B-{span.type}"
        for i in range(span.start + 1, span.end):
            tags[i] = f"I-{span.type}"
    return tags


def label_list(tag_sets: list[list[str]] | list[tuple[str, ...]]) -> list[str]:
    """``O`` then ``B-X``, ``I-X`` for every entity type seen, types sorted: the class ids of the head."""
    kinds = sorted({t[2:] for tags in tag_sets for t in tags if t != "O"})
    return ["O"] + [f"{p}-{k}" for k in kinds for p in ("B", "I")]
