"""Prompt-based fine-tuning (PET; Schick & Schuetze, 2021): train *through* the template, the loss over the
verbalizer's label words.

The classifier is the language model itself. Each text is rendered into the template; the model's
prediction in the answer slot is read only for the verbalizer's words, and a label's logit is its best
word's score, exactly as zero-shot scoring (:mod:`tuneforge.prompting.scoring`) computes it:

    masked LM:  s(w) = combine_j log softmax(h_mask_j W_head)[t_j]      (one [MASK] per token of w)
    causal LM:  s(w) = log softmax(h_last W_head)[t_1]                  (the word's first token)
    logit(c)   = max_{w in words(c)} s(w)          loss = cross-entropy(softmax_c logit(c), y)

so a PET model before its first step predicts what ``tuneforge zeroshot`` predicts, and training starts
from the pretrained head instead of a random one (why PET wins with few examples).

Why a subclass of the language model rather than a new classifier head: the weights stay those of
``AutoModelForMaskedLM`` / ``AutoModelForCausalLM`` (the class keeps its transformers name, so the saved
folder loads in transformers as the LM it is), every method applies to it as to a classifier (peft's
sequence-classification wrappers call ``forward`` with ``labels`` and read ``.logits``), and the run folder's
``config.json`` carries the verbalizer's token ids (``tuneforge_prompt``) for loading it back.

Training scores every word in one forward pass per text, so for masked LMs all words must have the same
number of tokens (or ``multi_token: first``: one mask, first tokens), and for causal LMs only first tokens
are scored (``multi_token: first``, or single-token words). Zero-shot scoring has no such limit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tuneforge.data.records import Example
from tuneforge.errors import TuneforgeError
from tuneforge.evaluation.inference import thread_state
from tuneforge.prompting.config import PromptConfig
from tuneforge.prompting.scoring import LanguageModel, PromptScorer, load_language_model
from tuneforge.prompting.template import split_space
from tuneforge.prompting.verbalizer import combine_tokens, continuation_ids, label_scores

CONFIG_KEY = "tuneforge_prompt"  # in config.json: how the model turns LM predictions into class logits
MARK = "_tuneforge_prompt_classifier"  # class attribute: no separate task head (methods/params.py)


def _label_logits(self, token_logprobs: torch.Tensor, labels: torch.Tensor | None):
    """(B, W, k) log-probabilities of every word's k tokens -> class logits (B, C) and the loss."""
    from transformers.modeling_outputs import SequenceClassifierOutput

    spec = self.config.tuneforge_prompt
    words = combine_tokens(token_logprobs, spec["multi_token"])  # (B, W)
    logits = label_scores(words, spec["word_labels"], len(spec["labels"]))  # (B, C)
    loss = None
    if labels is not None:
        loss = nn.functional.cross_entropy(logits, labels.to(logits.device))
    return SequenceClassifierOutput(loss=loss, logits=logits)


def _masked_forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                    inputs_embeds=None, labels=None, **kwargs):
    spec = self.config.tuneforge_prompt
    body = getattr(self, self.base_model_prefix)
    hidden = body(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                  position_ids=position_ids, inputs_embeds=inputs_embeds)[0]  # (B, T, H)
    # peft's prompt tuning embeds the ids itself and prepends p virtual tokens: the ids come from the
    # embedding layer's hook and the answer moves right by p.
    ids = input_ids if input_ids is not None else thread_state(self).get("embedded_ids")
    if ids is None or ids.shape[0] != hidden.shape[0]:
        raise RuntimeError("prompt classifier: called with inputs_embeds but no input ids were embedded")
    word_ids = torch.tensor(spec["word_ids"], device=hidden.device)  # (W, k)
    k = word_ids.shape[1]
    is_mask = ids == spec["mask_token_id"]  # (B, T0)
    if bool((is_mask.sum(-1) != k).any()):
        raise RuntimeError(f"prompt classifier: every input needs exactly {k} mask token(s) in the answer slot")
    positions = is_mask.nonzero()[:, 1].view(-1, k) + (hidden.shape[1] - ids.shape[1])  # (B, k)
    rows = torch.arange(hidden.shape[0], device=hidden.device)[:, None]
    head = _mlm_head(self)
    logprobs = torch.log_softmax(head(hidden[rows, positions]).float(), dim=-1)  # (B, k, V)
    # token j of word w at mask j: (B, k, W) -> (B, W, k)
    picked = logprobs.gather(2, word_ids.t()[None].expand(hidden.shape[0], k, -1)).transpose(1, 2)
    return _label_logits(self, picked, labels)


def _causal_forward(self, input_ids=None, attention_mask=None, position_ids=None, inputs_embeds=None,
                    labels=None, **kwargs):
    from tuneforge.models.pooling import last_real_token

    spec = self.config.tuneforge_prompt
    if position_ids is None and attention_mask is not None:
        position_ids = ((attention_mask > 0).long().cumsum(-1) - 1).clamp(min=0)  # as generate(): padding-free
    body = getattr(self, self.base_model_prefix)
    hidden = body(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                  inputs_embeds=inputs_embeds, use_cache=False)[0]  # (B, T, H)
    batch, length, _ = hidden.shape
    last = last_real_token(attention_mask, batch, length, hidden.device)  # (B,) the token before the answer
    h = hidden[torch.arange(batch, device=hidden.device), last]  # (B, H)
    logprobs = torch.log_softmax(self.get_output_embeddings()(h).float(), dim=-1)  # (B, V)
    first = torch.tensor([w[0] for w in spec["word_ids"]], device=h.device)  # (W,)
    return _label_logits(self, logprobs[:, first][:, :, None], labels)  # (B, W, 1)


def _mlm_head(model: nn.Module) -> nn.Module:
    """The masked LM's prediction head: its one child besides the encoder (BERT ``cls``, RoBERTa ``lm_head``)."""
    heads = [m for n, m in model.named_children() if n != model.base_model_prefix]
    if len(heads) != 1:
        raise TuneforgeError(f"{type(model).__name__}: prompt-based training needs a masked LM whose prediction "
                             "head is one module beside the encoder (BERT, RoBERTa, ELECTRA generators); this one "
                             f"has {[n for n, _ in model.named_children()]}.")
    return heads[0]


_CLASSES: dict[type, type] = {}


def prompt_classifier_class(base: type, kind: str) -> type:
    """``base`` (an ``*ForMaskedLM`` / ``*ForCausalLM`` class) with the PET forward; same name, so
    ``save_pretrained`` records the transformers architecture and the folder loads without tuneforge."""
    if base not in _CLASSES:
        forward = _masked_forward if kind == "masked" else _causal_forward
        _CLASSES[base] = type(base.__name__, (base,), {"forward": forward, MARK: True, "__module__": __name__})
    return _CLASSES[base]


def _remember_ids(module: nn.Module, args: tuple, kwargs: dict) -> None:
    """Embedding pre-hook: the ids of this thread's forward pass, for ``_masked_forward`` (per thread: passes may
    run side by side on one model)."""
    ids = args[0] if args else kwargs.get("input")
    if ids is not None and not ids.is_floating_point():
        thread_state(module._tuneforge_owner())["embedded_ids"] = ids


def _install_id_hook(model: nn.Module) -> None:
    embeddings = model.get_input_embeddings()
    owner = [model]  # a list, not an attribute holding the module: that would register it as a submodule
    embeddings._tuneforge_owner = lambda: owner[0]
    embeddings.register_forward_pre_hook(_remember_ids, with_kwargs=True)


@dataclass
class PromptInputs:
    """Renders examples into the template, as the PET model reads them (training and prediction)."""

    scorer: PromptScorer
    kind: str
    k: int  # mask tokens in the answer slot (masked LMs)

    def render(self, examples: Sequence[Example]) -> list[Example]:
        tok = self.scorer.lm.tokenizer
        if self.kind == "causal":
            texts = [prompt for prompt, _ in self.scorer.causal_prompts(examples)]
        else:
            texts = []
            for text, pair in self.scorer._fit(examples, reserve=self.k + 4):
                before, after = self.scorer.template.split(text, pair)
                context, space = split_space(before)
                texts.append(context + space + tok.mask_token * self.k + after)
        return [Example(text=t, label=e.label, meta=e.meta) for t, e in zip(texts, examples)]


def _word_ids(lm: LanguageModel, prompt: PromptConfig, scorer: PromptScorer, words: list[str]) -> list[list[int]]:
    if lm.kind == "masked":
        by_word = dict(zip(scorer.verbalizer.flat, scorer.word_ids))
        return [by_word[w] for w in words]
    # Causal: the words' tokens after the template's text before {answer}, the input text left empty.
    prompt_text, space = scorer.causal_prompts([Example(text="")])[0]
    return continuation_ids(lm.tokenizer, [prompt_text] * len(words), [space + w for w in words])


def check_verbalizer_labels(prompt: PromptConfig, labels: list[str]) -> None:
    """PET's classes are the verbalizer's keys: exactly the data's labels (train checks this before its folder)."""
    mapping = prompt.words()
    missing = [label for label in labels if label not in mapping]
    extra = [label for label in mapping if label not in labels]
    if missing or extra:
        raise TuneforgeError(f"prompt.verbalizer must name a word for each label of the data ({', '.join(labels)}): "
                             + (f"no word for {missing}. " if missing else "")
                             + (f"{extra} are not labels of the data. " if extra else "")
                             + "Make its keys the data's labels.")


def prompt_spec(lm: LanguageModel, prompt: PromptConfig, labels: list[str], scorer: PromptScorer) -> dict[str, Any]:
    """What config.json records: labels in the data's order, each word's tokens and label, how they combine."""
    check_verbalizer_labels(prompt, labels)
    mapping = prompt.words()
    words = [w for label in labels for w in mapping[label]]
    word_labels = [i for i, label in enumerate(labels) for _ in mapping[label]]
    ids = _word_ids(lm, prompt, scorer, words)
    first_only = prompt.multi_token == "first"
    lengths = {w: len(i) for w, i in zip(words, ids)}
    if first_only:
        ids = [i[:1] for i in ids]
    elif lm.kind == "causal" and max(lengths.values()) > 1:
        raise TuneforgeError(f"Prompt-based training on a causal LM scores each word's first token (one pass per "
                             f"text), but some words are several tokens: {_listing(lengths)}. Set "
                             "prompt.multi_token: first, or choose single-token words.")
    elif len(set(lengths.values())) > 1:
        raise TuneforgeError("Prompt-based training on a masked LM scores all words at the same mask tokens, but the "
                             f"words have different numbers of tokens: {_listing(lengths)}. Set prompt.multi_token: "
                             "first (one mask, each word's first token), or choose words of equal length.")
    return {"kind": lm.kind, "labels": labels, "words": words, "word_ids": ids, "word_labels": word_labels,
            "multi_token": prompt.multi_token, "mask_token_id": lm.tokenizer.mask_token_id,
            "template": prompt.template, "chat": prompt.chat}


def _listing(lengths: dict[str, int]) -> str:
    return ", ".join(f'"{w}" {n} token{"s" * (n != 1)}' for w, n in lengths.items())


def as_prompt_classifier(lm: LanguageModel, spec: dict[str, Any]) -> nn.Module:
    """Turn the loaded LM into its PET subclass in place (no copy of the weights)."""
    model = lm.model
    model.__class__ = prompt_classifier_class(type(model), lm.kind)
    model.config.tuneforge_prompt = spec
    model.config.id2label = dict(enumerate(spec["labels"]))
    model.config.label2id = {v: k for k, v in model.config.id2label.items()}
    if lm.kind == "masked":
        _mlm_head(model)  # fails early for an unsupported head layout
        _install_id_hook(model)
    return model


def load_prompt_backbone(name: str, prompt: PromptConfig, labels: list[str], max_length: int,
                         check_words: bool = False):
    """The PET model of ``model:`` as a :class:`~tuneforge.models.backbones.Backbone` (no new parameters:
    the verbalizer's rows of the LM head are the classifier) and the renderer of its inputs. ``check_words``
    (training) refuses words the model cannot tell apart; a finished run loads as it was trained."""
    from tuneforge.models.backbones import Backbone, load_tokenizer

    lm = load_language_model(name)
    if lm.kind == "causal":
        lm.tokenizer = load_tokenizer(lm.path, padding_side="left")  # saved with the run: the answer is last
    model = lm.model
    model.train()
    scorer = PromptScorer(lm, prompt, max_length=max_length)
    if check_words:
        scorer.check_words()
    spec = prompt_spec(lm, prompt, labels, scorer)
    as_prompt_classifier(lm, spec)
    inputs = PromptInputs(scorer=scorer, kind=lm.kind, k=len(spec["word_ids"][0]))
    return Backbone(model=model, tokenizer=lm.tokenizer, path=lm.path, new_parameters=set()), inputs


def prompt_inputs_for(model: nn.Module, tokenizer: Any, prompt: PromptConfig, max_length: int) -> PromptInputs:
    """The renderer for a loaded PET run (its model and tokenizer)."""
    spec = _find_spec(model)
    lm = LanguageModel(model=model, tokenizer=tokenizer, kind=spec["kind"], path="")
    return PromptInputs(scorer=PromptScorer(lm, prompt, max_length=max_length), kind=spec["kind"],
                        k=len(spec["word_ids"][0]))


def _find_spec(model: nn.Module) -> dict[str, Any]:
    for module in model.modules():
        spec = getattr(getattr(module, "config", None), CONFIG_KEY, None)
        if spec is not None:
            return spec
    raise TuneforgeError("This model was not trained through a prompt (its config.json has no tuneforge_prompt).")


def is_prompt_folder(folder: Path) -> bool:
    config = Path(folder) / "config.json"
    return config.exists() and CONFIG_KEY in json.loads(config.read_text(encoding="utf-8"))


def load_prompt_folder(folder: Path) -> nn.Module:
    """A PET model saved whole (methods full, freeze, bitfit)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM

    config = AutoConfig.from_pretrained(folder)
    spec = getattr(config, CONFIG_KEY)
    auto = AutoModelForMaskedLM if spec["kind"] == "masked" else AutoModelForCausalLM
    model = auto.from_pretrained(folder, dtype=torch.float32)
    model.__class__ = prompt_classifier_class(type(model), spec["kind"])
    if spec["kind"] == "masked":
        _install_id_hook(model)
    return model
