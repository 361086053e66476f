"""Contrastive fine-tuning of the encoder on the knowledge base's own paraphrases.

Positive pairs (a, p): two questions with the same answer (at most ``max_pairs_per_group`` per answer) and,
with ``with_answers``, each question with its answer. The loss is the softmax over in-batch negatives
(Henderson et al. 2017, "multiple negatives ranking"): for a batch of B pairs with cosines s,

    loss = -1/B sum_i log( exp(s(a_i, p_i) / tau) / sum_j exp(s(a_i, p_j) / tau) )

where p_j of the same answer as a_i (j != i) is masked out: it is not a negative.

Why not tuneforge's few-shot pairs (fewshot/pairs.py) and its SetFit loop: SetFit draws positives from classes
with many examples each, but here nearly every answer has one question (chatterbot English: 847 of 871), so
its pairs would be almost all negatives; and its loop trains a classifier through the pooler hooks, where the
assistant needs a bare sentence encoder. Only entries of the index are used: held-out queries never are.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import time
from pathlib import Path

import torch

from tuneforge.apps.assistant.kb import Entry, groups
from tuneforge.models.precision import autocast
from tuneforge.training.progress import training_bar


def positive_pairs(entries: list[Entry], with_answers: bool, max_pairs_per_group: int, seed: int
                   ) -> list[tuple[str, str, str]]:
    """(anchor, positive, group) triples."""
    rng = random.Random(seed)
    pairs = []
    for group, members in groups(entries).items():
        questions = list(dict.fromkeys(entries[i].question for i in members))
        combos = list(itertools.permutations(questions, 2))
        rng.shuffle(combos)
        pairs += [(a, b, group) for a, b in combos[:max_pairs_per_group]]
        if with_answers:
            pairs += [(q, entries[members[0]].answer, group) for q in questions]
    return pairs


def batch_loss(encoder, batch: list[tuple[str, str, str]], max_length: int, temperature: float) -> torch.Tensor:
    anchors = encoder([a for a, _, _ in batch], max_length)  # (B, H) unit rows
    positives = encoder([p for _, p, _ in batch], max_length)  # (B, H)
    logits = anchors @ positives.T / temperature  # (B, B)
    same = torch.tensor([[gi == gj and i != j for j, (_, _, gj) in enumerate(batch)]
                         for i, (_, _, gi) in enumerate(batch)])
    logits = logits.masked_fill(same, float("-inf"))
    return torch.nn.functional.cross_entropy(logits, torch.arange(len(batch)))


@torch.enable_grad()  # a caller may have switched gradients off globally (torch.set_grad_enabled(False))
def finetune(encoder, entries: list[Entry], cfg, max_length: int, precision: str, log_path: Path,
             progress: bool = True) -> dict:
    """``cfg``: the config's ``finetune:`` section. Trains ``encoder`` in place; returns a summary."""
    pairs = positive_pairs(entries, cfg.with_answers, cfg.max_pairs_per_group, cfg.seed)
    if len(pairs) < 2:
        raise ValueError("fewer than two positive pairs")
    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    per_epoch = math.ceil(len(pairs) / cfg.batch_size)
    total = max(1, math.ceil(cfg.epochs * per_epoch))
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=cfg.learning_rate, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / total)
    encoder.train()
    losses, step, started = [], 0, time.perf_counter()
    with training_bar(progress) as bar, log_path.open("w", encoding="utf-8") as log:
        task = bar.add_task("fine-tune encoder", total=total, loss="-", rate="-")
        while step < total:
            order = rng.sample(pairs, len(pairs))
            for start in range(0, len(order), cfg.batch_size):
                batch = order[start:start + cfg.batch_size]
                if len(batch) < 2 or step >= total:  # one pair alone has no in-batch negative
                    continue
                with autocast(precision):
                    loss = batch_loss(encoder, batch, max_length, cfg.temperature)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                scheduler.step()
                step += 1
                losses.append(loss.item())
                rate = step * cfg.batch_size / (time.perf_counter() - started)
                log.write(json.dumps({"step": step, "loss": losses[-1], "pairs_per_second": rate}) + "\n")
                log.flush()  # follow a long fine-tune with tail -f
                bar.update(task, completed=step, loss=f"{losses[-1]:.4f}", rate=f"{rate:.1f}")
    encoder.eval()
    head = losses[:max(1, len(losses) // 10)]
    tail = losses[-max(1, len(losses) // 10):]
    return {"pairs": len(pairs), "steps": step, "first_loss": sum(head) / len(head),
            "last_loss": sum(tail) / len(tail), "seconds": round(time.perf_counter() - started, 2)}
