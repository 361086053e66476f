"""Prompt templates: input slots ``{text}``, ``{text_pair}`` and one answer slot ``{answer}``.

A template such as ``"{text} All in all, it was {answer}."`` turns a classification example into a cloze
question (Schick & Schuetze, 2021, "Exploiting Cloze Questions for Few Shot Text Classification", PET).
The verbalizer's words fill the answer slot; the model scores each word there.

Templates are parsed with :class:`string.Formatter` (``{{`` and ``}}`` are literal braces) but never
filled with ``str.format``: the user's text is pasted in as data, so braces in a tweet are harmless.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from tuneforge.data.records import Example
from tuneforge.errors import did_you_mean

SLOTS = ("text", "text_pair", "answer")


def template_problems(template: str) -> list[str]:
    """Everything wrong with ``template``, in the user's words (empty when it is valid)."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return [f"it is not a valid template ({exc}); write literal braces as {{{{ and }}}}"]
    fields = [field for _, field, _, _ in parsed if field is not None]
    problems = []
    for field in fields:
        if field not in SLOTS:
            hint = did_you_mean(field, SLOTS) if field else " Slots are {text}, {text_pair} and {answer}."
            problems.append(f'unknown slot "{{{field}}}".{hint}')
    if "text" not in fields:
        problems.append("it has no {text} slot, so the input text would never reach the model; add {text}")
    count = fields.count("answer")
    if count != 1:
        problems.append(f"it needs exactly one {{answer}} slot, where the label word goes, but has {count}; "
                        'e.g. "{text} All in all, it was {answer}."')
    for slot in ("text", "text_pair"):
        if fields.count(slot) > 1:
            problems.append(f"{{{slot}}} appears {fields.count(slot)} times; use it once")
    return problems


@dataclass(frozen=True)
class Template:
    """A validated template; :meth:`split` renders the text before and after the answer slot."""

    source: str

    @property
    def pieces(self) -> list[tuple[str, str | None]]:
        """(literal text, slot name or None) in order, as :class:`string.Formatter` parses them."""
        return [(literal, field) for literal, field, _, _ in string.Formatter().parse(self.source)]

    @property
    def uses_pair(self) -> bool:
        return any(field == "text_pair" for _, field in self.pieces)

    def answer_is_last(self) -> bool:
        """Nothing but whitespace after ``{answer}`` (required by left-to-right models)."""
        after = False
        for literal, field in self.pieces:
            if after and (literal.strip() or field is not None):
                return False
            if field == "answer":
                after = True
        return True

    def split(self, text: str, text_pair: str | None = None) -> tuple[str, str]:
        """The rendered text before ``{answer}`` and after it."""
        before: list[str] = []
        after: list[str] = []
        target = before
        for literal, field in self.pieces:
            target.append(literal)
            if field == "answer":
                target = after
            elif field == "text":
                target.append(text)
            elif field == "text_pair":
                target.append(text_pair or "")
        return "".join(before), "".join(after)

    def render(self, example: Example, answer: str = "") -> str:
        """The whole prompt with ``answer`` in the answer slot (for reading and for prompt.json)."""
        before, after = self.split(example.text, example.text_pair)
        return before + answer + after


def split_space(before: str) -> tuple[str, str]:
    """``"It was "`` -> (``"It was"``, ``" "``): the whitespace before the answer belongs to the word.

    BPE tokenizers (GPT-2, Llama 3, SmolLM2) fold a space into the next token (``" great"`` is one token,
    ``"great"`` another), so the word is tokenised with the space in front of it, in context.
    """
    stripped = before.rstrip()
    return stripped, before[len(stripped):]
