"""Score every label word in the answer slot of a prompt, on a masked LM or a causal LM, without training.

Masked LM (BERT, RoBERTa): the answer slot becomes k mask tokens for a word of k tokens, and token j of
the word is scored at mask j, ``log softmax(logits[mask_j])[t_j]`` (PET's scoring of multi-token words,
Schick & Schuetze 2021). Words of equal length share one forward pass per text.

Causal LM (Llama, GPT-2, SmolLM2): the word follows the prompt and is teacher-forced,
``log p(t_j | prompt, t_1..t_{j-1})``. The input is ``prompt + t_1..t_{k-1}`` and the k predictions sit
at its last k positions; batches are padded on the left, so those are the last k columns of every row
and the model computes logits there only (``logits_to_keep``). Positions count real tokens
(``cumsum(mask) - 1``, as ``generate()`` does), so padding changes no score. Words of one token all
need the same input (the prompt alone): one forward pass per text scores all of them.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn

from tuneforge.data.records import Example
from tuneforge.errors import TuneforgeError
from tuneforge.models.precision import Precision, autocast
from tuneforge.prompting.config import PromptConfig
from tuneforge.prompting.template import Template, split_space
from tuneforge.prompting.verbalizer import Verbalizer, combine_tokens, continuation_ids, label_scores, word_problems

Kind = Literal["masked", "causal"]
# Contextual calibration's content-free inputs (Zhao et al., 2021, "Calibrate Before Use"): the model's
# answer to them is its bias, which calibration divides out.
CONTENT_FREE = ("N/A", "", "[MASK]")


@dataclass
class LanguageModel:
    """A pretrained LM with its head (masked or causal) and tokenizer."""

    model: nn.Module
    tokenizer: Any
    kind: Kind
    path: str


def load_language_model(name: str) -> LanguageModel:
    """The model of ``model:`` with its language-modelling head: masked for encoders with a mask token,
    causal for decoders. A head that the checkpoint does not hold would be random: refused."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )
    from transformers.utils import logging as hf_logging

    from tuneforge.models.backbones import load_tokenizer, resolve_model

    path = resolve_model(name)
    config = AutoConfig.from_pretrained(path)
    tokenizer = load_tokenizer(path)
    if tokenizer.mask_token is not None and config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        kind: Kind = "masked"
        auto = AutoModelForMaskedLM
    elif config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        kind = "causal"
        auto = AutoModelForCausalLM
        tokenizer.padding_side = "left"
    else:
        raise TuneforgeError(f'model: "{name}" ({config.model_type}) is neither a masked LM with a mask token nor '
                             "a causal LM, so it cannot fill a prompt's answer slot. Use an encoder with an MLM head "
                             "(BERT, RoBERTa) or a decoder (smollm2).")
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the "newly initialized" warning becomes the error below
    try:
        model, info = auto.from_pretrained(path, output_loading_info=True, dtype=torch.float32)
    finally:
        hf_logging.set_verbosity(verbosity)
    missing = [key for key in info["missing_keys"] if not key.endswith("position_ids")]
    if missing:
        head = "MLM head" if kind == "masked" else "language-model head"
        shown = ", ".join(sorted(missing)[:4]) + (", ..." if len(missing) > 4 else "")
        why = (" (The bundled minilm is a sentence-transformers encoder saved without its MLM head.)"
               if name == "minilm" else "")
        raise TuneforgeError(
            f'model: "{name}" has no trained {head}: the checkpoint lacks {shown}, so those weights would be '
            f"random and zero-shot answers would be noise.{why} Continue MLM pretraining first, or use a model that "
            "keeps its head, e.g. a causal LM: model: smollm2.")
    model.eval()
    if kind == "causal":
        model.config.use_cache = False  # teacher forcing in one pass: no key/value cache to fill
    return LanguageModel(model=model, tokenizer=tokenizer, kind=kind, path=path)


@dataclass
class _Row:
    """One sequence to run: its ids, the example it belongs to and the words it scores."""

    ids: list[int]
    example: int
    words: list[int] = field(default_factory=list)  # indices into the verbalizer's flat word list
    tokens: list[list[int]] = field(default_factory=list)  # each of those words' token ids
    masks: list[int] = field(default_factory=list)  # masked LM: the positions of the answer's mask tokens


class PromptScorer:
    """Label scores and probabilities of a prompt and verbalizer on a language model.

    ``log_scores`` is (N, C): each label's best word score; ``predict_proba`` the softmax over classes,
    divided by the content-free probabilities when ``calibrate`` is set.
    """

    def __init__(self, lm: LanguageModel, prompt: PromptConfig, *, max_length: int = 128, batch_size: int = 32,
                 precision: Precision = "fp32", device: torch.device | str = "cpu") -> None:
        self.lm = lm
        self.prompt = prompt
        self.template = Template(prompt.template)
        self.verbalizer = Verbalizer.from_mapping(prompt.words())
        self.max_length = max_length
        self.batch_size = batch_size
        self.precision = precision
        self.device = torch.device(device)
        self.content_free: np.ndarray | None = None
        tok = lm.tokenizer
        if lm.kind == "causal" and not self.template.answer_is_last():
            raise TuneforgeError(f'prompt.template = "{prompt.template}": a causal LM reads left to right, so the '
                                 "{answer} slot must come last (words after it cannot inform the answer). Move "
                                 "{answer} to the end, e.g. \"{text}\\nSentiment: {answer}\".")
        if prompt.chat and (lm.kind != "causal" or not getattr(tok, "chat_template", None)):
            raise TuneforgeError(f"prompt.chat = true, but {lm.path} has no chat template (only instruct-tuned "
                                 "decoders such as smollm2 have one). Set prompt.chat: false.")
        if lm.kind == "masked":
            # Word tokens in the context of the literal text before {answer}, texts left empty.
            context, space = split_space(self.template.split("", "")[0])
            self.word_ids = continuation_ids(tok, [context] * len(self.verbalizer.flat),
                                             [space + w for w in self.verbalizer.flat])
        else:
            self.word_ids = []  # causal LM: tokenised per text, in its own context
        self._forward_args = set(inspect.signature(lm.model.forward).parameters)
        self._chat_tokens = 0  # what the chat template adds around the user's turn (a system turn, role tags)
        if prompt.chat:
            empty = tok.apply_chat_template([{"role": "user", "content": ""}], tokenize=False,
                                            add_generation_prompt=True)
            self._chat_tokens = len(tok(empty, add_special_tokens=False)["input_ids"])

    def check_words(self) -> None:
        """Refuse verbalizer words the model cannot tell apart (:func:`word_problems`), before any scoring. A
        causal LM's words are tokenised after the template's text before {answer}, the input text left empty."""
        words = self.verbalizer.flat
        if self.lm.kind == "masked":
            ids = self.word_ids
        else:
            prompt, space = self.causal_prompts([Example(text="")])[0]
            ids = continuation_ids(self.lm.tokenizer, [prompt] * len(words), [space + w for w in words])
        owners = [self.verbalizer.labels[i] for i in self.verbalizer.word_label]
        problems = word_problems(owners, words, ids, self.prompt.multi_token == "first", self.lm.tokenizer,
                                 self.lm.path)
        if problems:
            raise TuneforgeError("prompt.verbalizer: the model cannot tell some labels' words apart; fix them and "
                                 "run again:", [p + "." for p in problems])

    # ----------------------------------------------------------------- rendering
    def _fit(self, examples: Sequence[Example], reserve: int) -> list[tuple[str, str | None]]:
        """Texts cut (by tokens, at a token boundary) so that the prompt fits ``max_length`` with ``reserve``
        tokens to spare for the answer and special tokens. The template's own words are never cut."""
        tok = self.lm.tokenizer
        before, after = self.template.split("", "")
        budget = self.max_length - reserve - len(tok(before + after, add_special_tokens=False)["input_ids"])
        if budget < 8:
            raise TuneforgeError(f"prompt.template leaves {budget} tokens of data.max_length = {self.max_length} "
                                 "for the text; raise data.max_length or shorten the template.")
        pairs = [e.text_pair or "" for e in examples] if self.template.uses_pair else None
        out = []
        texts = self._cut(tok, [e.text for e in examples], budget if pairs is None else budget // 2)
        cut_pairs = self._cut(tok, pairs, budget - budget // 2) if pairs is not None else [None] * len(examples)
        for text, pair in zip(texts, cut_pairs):
            if tok.mask_token:  # a literal "[MASK]" in a text would be taken for an answer slot
                text = text.replace(tok.mask_token, " ")
                pair = pair.replace(tok.mask_token, " ") if pair is not None else None
            out.append((text, pair))
        return out

    @staticmethod
    def _cut(tok, texts: list[str], budget: int) -> list[str]:
        enc = tok(texts, add_special_tokens=False, return_offsets_mapping=True)
        return [text if len(ids) <= budget else text[:offsets[budget - 1][1]]
                for text, ids, offsets in zip(texts, enc["input_ids"], enc["offset_mapping"])]

    def _masked_rows(self, examples: Sequence[Example]) -> list[_Row]:
        tok = self.lm.tokenizer
        longest = max(len(ids) for ids in self.word_ids)
        by_length: dict[int, list[int]] = {}  # words of k tokens share one input with k masks
        for word, ids in enumerate(self.word_ids):
            by_length.setdefault(len(ids), []).append(word)
        rows: list[_Row] = []
        strings: list[str] = []
        for index, (text, pair) in enumerate(self._fit(examples, reserve=longest + 4)):
            before, after = self.template.split(text, pair)
            context, space = split_space(before)
            for k, words in by_length.items():
                strings.append(context + space + tok.mask_token * k + after)
                rows.append(_Row(ids=[], example=index, words=words, tokens=[self.word_ids[w] for w in words]))
        encoded = tok(strings)["input_ids"]
        for row, ids in zip(rows, encoded):
            row.ids = ids
            row.masks = [i for i, t in enumerate(ids) if t == tok.mask_token_id]
            if len(row.masks) != len(row.tokens[0]):
                raise TuneforgeError(f'prompt.template = "{self.prompt.template}" holds the mask token '
                                     f"{tok.mask_token} itself; the answer slot is {{answer}}. Remove it.")
        return rows

    def causal_prompts(self, examples: Sequence[Example]) -> list[tuple[str, str]]:
        """(prompt, space before the word) per example; with ``chat`` the prompt ends in the assistant turn."""
        tok = self.lm.tokenizer
        out = []
        for text, pair in self._fit(examples, reserve=16 + self._chat_tokens):
            before, _ = self.template.split(text, pair)
            if self.prompt.chat:
                messages = [{"role": "user", "content": before.strip()}]
                out.append((tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True), ""))
            else:
                out.append(split_space(before))
        return out

    def _causal_rows(self, examples: Sequence[Example]) -> list[_Row]:
        tok = self.lm.tokenizer
        prompts = self.causal_prompts(examples)
        words = self.verbalizer.flat
        plain = tok([p for p, _ in prompts], add_special_tokens=False)["input_ids"]
        special = tok([p for p, _ in prompts], add_special_tokens=not self.prompt.chat)["input_ids"]
        conts = continuation_ids(tok, [p for p, _ in prompts for _ in words],
                                 [space + w for _, space in prompts for w in words])
        rows: list[_Row] = []
        for index, (head, full) in enumerate(zip(plain, special)):
            # Leading special tokens (a BOS) that the tokenizer adds; SmolLM2 adds none.
            lead = full[:len(full) - len(head)] if full[len(full) - len(head):] == head else []
            by_input: dict[tuple[int, ...], _Row] = {}
            for word in range(len(words)):
                ids = conts[index * len(words) + word]
                if self.prompt.multi_token == "first":
                    ids = ids[:1]  # only the first token counts: every word shares the prompt's pass
                key = tuple(lead + head + ids[:-1])  # the word's last token is predicted, never read
                if key not in by_input:
                    by_input[key] = _Row(ids=list(key), example=index)
                    rows.append(by_input[key])
                by_input[key].words.append(word)
                by_input[key].tokens.append(ids)
        return rows

    # ----------------------------------------------------------------- scoring
    @torch.inference_mode()
    def word_scores(self, examples: Sequence[Example], progress: bool = False, description: str = "zero-shot"
                    ) -> torch.Tensor:
        """(N, W) score of every verbalizer word (flat order) for every example."""
        model = self.lm.model
        causal = self.lm.kind == "causal"
        rows = self._causal_rows(examples) if causal else self._masked_rows(examples)
        out = torch.full((len(examples), len(self.verbalizer.flat)), float("nan"))
        pad = self.lm.tokenizer.pad_token_id or 0
        order = sorted(range(len(rows)), key=lambda i: len(rows[i].ids))  # similar lengths, little padding
        model.to(self.device)
        with scoring_bar(progress) as bar:
            task = bar.add_task(description, total=len(examples))
            done: set[int] = set()
            for start in range(0, len(order), self.batch_size):
                batch = [rows[i] for i in order[start:start + self.batch_size]]
                width = max(len(r.ids) for r in batch)
                ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros_like(ids)
                for b, row in enumerate(batch):
                    span = slice(width - len(row.ids), width) if causal else slice(0, len(row.ids))
                    ids[b, span] = torch.tensor(row.ids)
                    mask[b, span] = 1
                inputs: dict[str, torch.Tensor | int] = {"input_ids": ids.to(self.device),
                                                         "attention_mask": mask.to(self.device)}
                if causal:
                    keep = max(len(r.tokens[0]) for r in batch)  # a row's words are all this long
                    if "position_ids" in self._forward_args:
                        inputs["position_ids"] = ((mask.cumsum(-1) - 1).clamp(min=0)).to(self.device)
                    if "logits_to_keep" in self._forward_args:
                        inputs["logits_to_keep"] = keep
                with autocast(self.precision, self.device):
                    logits = model(**inputs).logits
                if causal:  # (B, keep, V): the predictions of the words' tokens, the last positions of every row
                    logprobs = torch.log_softmax(logits[:, -keep:].float(), dim=-1).cpu()
                for b, row in enumerate(batch):
                    if not causal:  # (k, V) at the row's k mask positions only
                        at_masks = torch.log_softmax(logits[b, row.masks].float(), dim=-1).cpu()
                    for word, target in zip(row.words, row.tokens):
                        if causal:
                            picked = logprobs[b, range(keep - len(target), keep), target]
                        else:
                            picked = at_masks[range(len(target)), target]
                        # picked: (k,) log p of each of the word's k tokens
                        out[row.example, word] = combine_tokens(picked, self.prompt.multi_token)
                    done.add(row.example)
                bar.update(task, completed=len(done))
        return out

    def log_scores(self, examples: Sequence[Example], progress: bool = False, description: str = "zero-shot"
                   ) -> torch.Tensor:
        """(N, C) label scores: the best of each label's word scores."""
        return label_scores(self.word_scores(examples, progress, description), self.verbalizer.word_label,
                            len(self.verbalizer.labels))

    def calibrate(self) -> np.ndarray:
        """The mean class probabilities for the content-free inputs; later predictions divide by them."""
        examples = [Example(text=t, text_pair=t if self.template.uses_pair else None) for t in CONTENT_FREE]
        probs = torch.softmax(self.log_scores(examples), dim=-1).mean(0)
        self.content_free = probs.numpy()
        return self.content_free

    def predict_proba(self, examples: Sequence[Example], progress: bool = False, description: str = "zero-shot"
                      ) -> np.ndarray:
        """(N, C) class probabilities, columns in verbalizer order (calibrated when ``prompt.calibrate``)."""
        if not examples:
            return np.zeros((0, len(self.verbalizer.labels)), dtype=np.float32)
        if self.prompt.calibrate and self.content_free is None:
            self.calibrate()
        scores = self.log_scores(examples, progress, description)
        if self.prompt.calibrate:
            # softmax(s - log p_cf) = normalise(p / p_cf): W = diag(p_cf)^-1, b = 0 in Zhao et al.'s notation.
            scores = scores - torch.log(torch.from_numpy(self.content_free).clamp(min=1e-12))
        return torch.softmax(scores, dim=-1).numpy()

    def describe(self) -> dict[str, Any]:
        """What prompt.json records: the prompt, every word's tokens, and an example as the model sees it."""
        tok = self.lm.tokenizer
        example = Example(text="<text>", text_pair="<text_pair>" if self.template.uses_pair else None)
        if self.lm.kind == "causal":
            prompt, space = self.causal_prompts([example])[0]
            shown = prompt + space + "<answer>"
            ids = continuation_ids(tok, [prompt] * len(self.verbalizer.flat),
                                   [space + w for w in self.verbalizer.flat])
        else:
            shown = self.template.render(example, "<answer>")
            ids = self.word_ids
        words = {}
        flat = iter(zip(self.verbalizer.flat, ids))
        for label, label_words in zip(self.verbalizer.labels, self.verbalizer.words):
            words[label] = [{"word": w, "tokens": tok.convert_ids_to_tokens(i), "ids": i}
                            for w, i in (next(flat) for _ in label_words)]
        return {"template": self.prompt.template, "verbalizer": self.prompt.words(), "labels": self.verbalizer.labels,
                "multi_token": self.prompt.multi_token, "label_score": "max over the label's words",
                "calibrate": self.prompt.calibrate, "chat": self.prompt.chat, "model_kind": self.lm.kind,
                "rendered": shown, "words": words,
                "content_free_inputs": list(CONTENT_FREE) if self.prompt.calibrate else None,
                "content_free_probabilities": None if self.content_free is None else
                dict(zip(self.verbalizer.labels, map(float, self.content_free)))}


def scoring_bar(enabled: bool = True) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("texts"),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    console=Console(stderr=True), disable=not enabled, transient=False)
