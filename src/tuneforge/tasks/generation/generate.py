"""Batched generation: left-padded prompts through ``model.generate``, decoded answers back in input order.

Prompts are padded on the left so every prompt's last token sits at the last position, where generation
continues; transformers counts positions from each row's first real token (the attention mask), so the
padding does not change what a prompt produces. Prompts of similar length are batched together (less
padding); for prompt tuning only prompts of equal length share a batch (see :func:`batches`). Sampling
draws from torch's generator seeded with ``seed`` (and forked, so the caller's random state is untouched):
the same call gives the same answers.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from tuneforge.errors import TuneforgeError
from tuneforge.models.precision import Precision, autocast


@dataclass(frozen=True)
class Sampling:
    """How the next token is picked. Greedy (``do_sample=False``) ignores (and does not check) temperature,
    top_p and top_k."""

    max_new_tokens: int = 128
    do_sample: bool = False
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 50
    seed: int = 0

    def check(self) -> None:
        problems = []
        if self.max_new_tokens < 1:
            problems.append(f"max_new_tokens = {self.max_new_tokens}: generate at least 1 token")
        if self.do_sample and self.temperature <= 0:
            problems.append(f"temperature = {self.temperature}: use a value > 0 (or greedy decoding for the "
                            "most likely answer)")
        if self.do_sample and not 0 < self.top_p <= 1:
            problems.append(f"top_p = {self.top_p}: use a value in (0, 1] (1 keeps every token)")
        if self.do_sample and self.top_k < 0:
            problems.append(f"top_k = {self.top_k}: use 0 (no limit) or a positive number of tokens")
        if problems:
            raise TuneforgeError("Bad generation settings:", problems)

    def generate_kwargs(self) -> dict:
        if not self.do_sample:
            return {"do_sample": False, "max_new_tokens": self.max_new_tokens}
        return {"do_sample": True, "max_new_tokens": self.max_new_tokens, "temperature": self.temperature,
                "top_p": self.top_p, "top_k": self.top_k}


SAMPLING_OPTIONS = ("temperature", "top_p", "top_k", "seed")  # used only when sampling


def choose_sampling(max_new_tokens: int = 128, do_sample: bool | None = None, *, temperature: float | None = None,
                    top_p: float | None = None, top_k: int | None = None, seed: int | None = None,
                    cli: bool = False) -> Sampling:
    """The checked :class:`Sampling` for these settings; ``None`` means not given (the default).

    A sampling option (temperature, top_p, top_k, seed) given without a choice of decoding turns sampling on.
    Greedy decoding has no use for any of them, so ignoring one (what happened before) throws away what the
    user asked for without a word, and refusing it ("add --sample") makes them repeat what the option already
    says: there is no greedy reading of "temperature 0.8". Reading it as a request to sample is also what
    OpenAI-style APIs, vLLM and llama.cpp do with a temperature. Nothing turns random by surprise: sampling is
    seeded (seed 0 unless given), so the same command gives the same answers. The one contradiction, greedy
    asked for explicitly next to a sampling option, is refused. ``cli`` words the error in flags."""
    given = {name: value for name, value in zip(SAMPLING_OPTIONS, (temperature, top_p, top_k, seed))
             if value is not None}
    if do_sample is False and given:
        shown = ", ".join(f"--{name.replace('_', '-')} {value}" if cli else f"{name}={value}"
                          for name, value in given.items())
        greedy = "--greedy" if cli else "do_sample=False"
        raise TuneforgeError(f"{shown}: only used when sampling, but {greedy} asks for greedy decoding, which would "
                             f"ignore it. Drop {greedy} to sample (a sampling option alone turns sampling on), or "
                             f"drop {shown} for the greedy answer.")
    sampling = Sampling(max_new_tokens=max_new_tokens, do_sample=bool(given) if do_sample is None else do_sample,
                        **given)
    sampling.check()
    return sampling


@torch.no_grad()
def generate_ids(model: nn.Module, prompts: Sequence[list[int]], sampling: Sampling, *, stop_ids: list[int],
                 pad_id: int, batch_size: int, precision: Precision, device: torch.device) -> list[list[int]]:
    """The new tokens after each prompt (the stop token, if reached, removed), in the order of ``prompts``."""
    sampling.check()
    was_training = model.training
    model.eval()
    out: list[list[int]] = [[] for _ in prompts]
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sampling.seed)
            for batch in batches([len(p) for p in prompts], batch_size, same_length=prompt_learning(model)):
                width = max(len(prompts[i]) for i in batch)
                ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                mask = torch.zeros_like(ids)
                for row, i in enumerate(batch):
                    n = len(prompts[i])
                    ids[row, width - n:] = torch.tensor(prompts[i])
                    mask[row, width - n:] = 1
                with autocast(precision, device), warnings.catch_warnings():
                    # peft, prompt tuning: "Position ids are not supported ... Ignoring" (see batches())
                    warnings.filterwarnings("ignore", message="Position ids are not supported")
                    generated = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                               eos_token_id=stop_ids, pad_token_id=pad_id, use_cache=True,
                                               **sampling.generate_kwargs())
                for row, i in enumerate(batch):
                    new = generated[row, width:].tolist()
                    end = next((k for k, t in enumerate(new) if t in stop_ids), len(new))
                    out[i] = new[:end]
    finally:
        model.train(was_training)
    return out


def prompt_learning(model: nn.Module) -> bool:
    """True for a peft prompt-learning model (prompt tuning): peft ignores the position ids it is given."""
    config = getattr(model, "peft_config", None)
    active = getattr(model, "active_adapter", None)
    return bool(config) and getattr(config.get(active), "is_prompt_learning", False)


def batches(lengths: Sequence[int], batch_size: int, same_length: bool) -> list[list[int]]:
    """Indices of each batch, prompts of similar length together. ``same_length``: only prompts of equal
    length share a batch (no padding), for prompt tuning: peft drops the position ids that make left padding
    harmless, so a padded prompt would see shifted positions and answer differently."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    for i in order:
        if groups and len(groups[-1]) < batch_size and (not same_length or lengths[groups[-1][0]] == lengths[i]):
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def decode(tokenizer, ids: Sequence[list[int]]) -> list[str]:
    return [tokenizer.decode(i, skip_special_tokens=True).strip() for i in ids]
