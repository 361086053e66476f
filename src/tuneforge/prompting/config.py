"""The ``prompt:`` config section: template, verbalizer and how words are scored."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from tuneforge.config.base import StrictModel
from tuneforge.prompting.template import template_problems


class PromptConfig(StrictModel):
    """A cloze prompt: the template turns a text into a question, the verbalizer names each label in words."""

    template: str = Field(description="The prompt, with {text} (and {text_pair} for pair tasks) and exactly one "
                                      "{answer} slot for the label word, e.g. \"{text} All in all, it was {answer}.\" "
                                      "For a causal LM (smollm2) {answer} must come last.")
    verbalizer: dict[str, str | list[str]] = Field(
        description="Label -> word, or list of words, that stands for it in the answer slot, e.g. "
                    "{positive: great, negative: [bad, terrible]}. Its keys are the classes, in this order.")
    multi_token: Literal["mean", "first", "sum"] = Field(
        "mean", description="How the log-probabilities of a word's tokens combine when it is several tokens: "
                            "mean (no penalty for length), first (only the first token), sum (the word's "
                            "log-probability; favours short words).")
    calibrate: bool = Field(False, description="Contextual calibration (Zhao et al., 2021): divide the class "
                                               "probabilities by those for content-free inputs (\"N/A\", \"\", "
                                               "\"[MASK]\"), which removes the prompt's bias toward some labels.")
    chat: bool = Field(False, description="Causal LMs with a chat template (instruct models like smollm2): the "
                                          "prompt before {answer} is the user's turn and the label word starts the "
                                          "assistant's answer.")

    @field_validator("template")
    @classmethod
    def _valid_template(cls, value: str) -> str:
        problems = template_problems(value)
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("verbalizer", mode="before")
    @classmethod
    def _yaml_scalars(cls, value: Any) -> Any:
        """YAML reads unquoted labels and words such as 0, 1, 5 as numbers and Yes, No, true, on as booleans: numbers
        are the text they were written as (CSV labels "0"/"1"); a boolean cannot say how it was spelt, so it is an
        error that asks for quotes (otherwise pydantic's four 'input should be a valid string / list' lines)."""
        if not isinstance(value, dict):
            return value

        def text(v: Any) -> Any:
            return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v

        keys = [str(k).lower() for k in value if isinstance(k, bool)]
        words = [f'"{label}" ({str(w).lower()})' for label, w in value.items()
                 if isinstance(w, bool) or (isinstance(w, list) and any(isinstance(x, bool) for x in w))]
        problems = []
        if keys:
            problems.append(f"the label(s) {', '.join(keys)} are booleans: YAML reads an unquoted yes/no/true/false/"
                            'on/off as one; quote each label as your data writes it, e.g. "yes": WORD')
        if words:
            first = next(label for label, w in value.items() if f'"{label}" (' in words[0])
            problems.append(f"the word(s) of {', '.join(words)} are booleans, not words: YAML reads an unquoted Yes/No/"
                            f'true/false/on/off as one; quote each word, e.g. {first}: "Yes"')
        if problems:
            raise ValueError("; ".join(problems))
        return {text(k): [text(w) for w in v] if isinstance(v, list) else text(v) for k, v in value.items()}

    @field_validator("verbalizer")
    @classmethod
    def _valid_verbalizer(cls, value: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        if len(value) < 2:
            raise ValueError("give a word for at least two labels, e.g. {positive: great, negative: terrible}")
        owner: dict[str, str] = {}
        for label, words in value.items():
            listed = [words] if isinstance(words, str) else words
            if not listed or any(not w.strip() for w in listed):
                raise ValueError(f'label "{label}" needs at least one non-empty word')
            for word in listed:
                if word.strip() in owner:
                    raise ValueError(f'the word "{word.strip()}" stands for both "{owner[word.strip()]}" and '
                                     f'"{label}"; give each label its own words')
                owner[word.strip()] = label
        return value

    def words(self) -> dict[str, list[str]]:
        """Every label's words as a list, surrounding whitespace removed."""
        return {label: [w.strip() for w in ([words] if isinstance(words, str) else words)]
                for label, words in self.verbalizer.items()}
