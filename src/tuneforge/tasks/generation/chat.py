"""Pairs as token ids: the chat template, answer-only labels, truncation that keeps the answer.

A pair becomes ``prompt ids + answer ids``; the labels are -100 (ignored by the cross-entropy) on every
prompt token, so the loss is the answer's alone, its end-of-turn token included (the model learns to stop):

    text     <|im_start|>user\\nHow do I ...?<|im_end|>\\n<|im_start|>assistant\\n | Open Settings ...<|im_end|>
    labels   -100 ...                                                         -100 | Open Settings ...<|im_end|>

The prompt is what ``apply_chat_template(..., add_generation_prompt=True)`` renders, the answer what the
full conversation adds after it, cut after its first special token (the end of the turn: a template's
trailing newline after ``<|im_end|>`` is not part of the answer). The two are tokenised separately, exactly
as generation tokenises a prompt, so training and generation see the same prompt ids. A tokenizer without a
chat template (most base models, the tiny test tokenizers) gets a plain format instead,

    [system prompt\\n\\n]Question: {prompt}\\nAnswer: | {response}</s>

and the run folder's chat.json says which format was used.

Truncation to ``max_length`` keeps the start of the answer and cuts the prompt from the left (its end, the
question itself and the assistant header, matters most): the answer keeps at least half of the budget,
the prompt the rest; an answer longer than that loses its end (and its end-of-turn token).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tuneforge.errors import TuneforgeError
from tuneforge.tasks.generation.records import Pair
from tuneforge.training.batching import Encoded

IGNORE = -100


def fit_length(prompt: list[int], answer: list[int], max_length: int) -> tuple[list[int], list[int]]:
    """``prompt`` cut from the left and ``answer`` from the right so that together they fit ``max_length``."""
    if len(prompt) + len(answer) <= max_length:
        return prompt, answer
    keep_answer = min(len(answer), max(max_length - len(prompt), max_length // 2))
    return prompt[len(prompt) - (max_length - keep_answer):], answer[:keep_answer]


def special_ids(tokenizer) -> set[int]:
    """Ids of the special tokens: the named ones (eos, pad, ...) and every added token marked special
    (a chat template's ``<|im_start|>``, ``<|im_end|>``)."""
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    return set(tokenizer.all_special_ids) | {i for i, t in added.items() if getattr(t, "special", False)}


@dataclass
class ChatFormat:
    """How a tokenizer turns (system, prompt, response) into ids; see the module docstring."""

    tokenizer: Any
    system_prompt: str | None = None
    uses_template: bool = field(init=False)
    stop_ids: list[int] = field(init=False)  # tokens that end an answer (generation stops at them)

    def __post_init__(self) -> None:
        tok = self.tokenizer
        self.uses_template = bool(getattr(tok, "chat_template", None))
        specials = special_ids(tok) - {tok.unk_token_id}
        stops = [tok.eos_token_id] if tok.eos_token_id is not None else []
        if self.uses_template:
            self._check_template()
            ended = self.answer_ids(["A."])[0]
            if ended and ended[-1] in specials and ended[-1] not in stops:
                stops.insert(0, ended[-1])  # the template's end of turn (<|im_end|>), before a plain eos
        elif tok.eos_token_id is None:
            raise TuneforgeError("The tokenizer has neither a chat template nor an end-of-text (eos) token, so an "
                                 "answer cannot be marked as finished. Use a model whose tokenizer has one.")
        self.stop_ids = stops

    def _messages(self, prompt: str) -> list[dict[str, str]]:
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return [*system, {"role": "user", "content": prompt}]

    def _check_template(self) -> None:
        prompt = self.prompt_texts(["Q?"])[0]
        full = self.tokenizer.apply_chat_template([*self._messages("Q?"), {"role": "assistant", "content": "A."}],
                                                  tokenize=False)
        if not full.startswith(prompt):
            raise TuneforgeError("The tokenizer's chat template does not render a conversation as the prompt (with "
                                 "add_generation_prompt) followed by the answer, so answer tokens cannot be told "
                                 f"apart. Rendered prompt: {prompt!r}; rendered conversation: {full!r}.")

    def prompt_texts(self, prompts: Sequence[str]) -> list[str]:
        if self.uses_template:
            return [self.tokenizer.apply_chat_template(self._messages(p), tokenize=False, add_generation_prompt=True)
                    for p in prompts]
        head = f"{self.system_prompt}\n\n" if self.system_prompt else ""
        return [f"{head}Question: {p}\nAnswer:" for p in prompts]

    def prompt_ids(self, prompts: Sequence[str]) -> list[list[int]]:
        """Token ids of each prompt up to where the answer starts (the assistant header included)."""
        if not prompts:
            return []
        # A template writes its own special tokens (BOS included); the plain format takes the tokenizer's.
        return self.tokenizer(self.prompt_texts(prompts), add_special_tokens=not self.uses_template)["input_ids"]

    def answer_ids(self, responses: Sequence[str], prompts: Sequence[str] | None = None) -> list[list[int]]:
        """Token ids of each answer, its end-of-turn token last."""
        if not responses:
            return []
        tok = self.tokenizer
        if not self.uses_template:
            ids = tok([f" {r}" for r in responses], add_special_tokens=False)["input_ids"]
            return [[*i, tok.eos_token_id] for i in ids]
        prompts = prompts or ["Q?"] * len(responses)
        enders = special_ids(tok) - {tok.unk_token_id}  # an unknown word inside the answer does not end it
        eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
        out = []
        for prompt, response, start in zip(prompts, responses, self.prompt_texts(prompts)):
            full = tok.apply_chat_template([*self._messages(prompt), {"role": "assistant", "content": response}],
                                           tokenize=False)
            text = full[len(start):] if full.startswith(start) else response
            # The answer is the response as the template writes it, then the template's text after it up to its
            # first special token (the end of the turn); a template that strips the content: the first special.
            at = text.find(response)
            content, suffix = (text[:at + len(response)], text[at + len(response):]) if at >= 0 else ("", text)
            content_ids = tok(content, add_special_tokens=False)["input_ids"] if content else []
            suffix_ids = tok(suffix, add_special_tokens=False)["input_ids"] if suffix else []
            end = next((i for i, t in enumerate(suffix_ids) if t in enders), None)
            out.append(content_ids + (suffix_ids[:end + 1] if end is not None else suffix_ids + eos))
        return out

    def describe(self) -> dict[str, Any]:
        """What chat.json records: the format, the system prompt, the stop tokens and one rendered example."""
        tok = self.tokenizer
        example = self.prompt_texts(["{prompt}"])[0]
        note = None if self.uses_template else ("the tokenizer has no chat template: pairs are written in the plain "
                                                "'Question: ...\\nAnswer: ...' format, ended by the eos token")
        return {"format": "chat_template" if self.uses_template else "plain", "system_prompt": self.system_prompt,
                "prompt_example": example, "stop_tokens": tok.convert_ids_to_tokens(self.stop_ids),
                "stop_ids": self.stop_ids, **({"note": note} if note else {})}


def encode_pairs(pairs: Sequence[Pair], chat: ChatFormat, max_length: int) -> Encoded:
    """Ids of prompt + answer per pair, labels -100 on the prompt (answer-only loss); unpadded."""
    if any(p.response is None for p in pairs):
        raise TuneforgeError("Training and scoring need a reference answer for every prompt.")
    prompts = chat.prompt_ids([p.prompt for p in pairs])
    answers = chat.answer_ids([p.response or "" for p in pairs], [p.prompt for p in pairs])
    input_ids, labels = [], []
    for prompt, answer in zip(prompts, answers):
        prompt, answer = fit_length(prompt, answer, max_length)
        input_ids.append(prompt + answer)
        labels.append([IGNORE] * len(prompt) + answer)
    return Encoded(input_ids=input_ids, labels=labels)


def encode_prompts(prompts: Sequence[str], chat: ChatFormat, max_length: int) -> list[list[int]]:
    """Prompt ids for generation, cut from the left to ``max_length`` (the end of a prompt matters most)."""
    return [ids[-max_length:] for ids in chat.prompt_ids(prompts)]
