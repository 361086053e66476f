"""Time-boxed masked-LM pilot: train a from-scratch pre-norm encoder of the given size for SECONDS of wall time
on the Chinese encoder's corpora (peoples-daily + chinese-reviews-train x3, the recipe's held-out split), then
print the held-out masked-token accuracy on 300 held-out documents. Used to choose
configs/chinese-encoder-small.yaml: which width learns most in the same time on this CPU. One thread, bf16,
batches in a fixed shuffled order, lr constant after 150 linear warmup steps, no dropout.

    python bench/mlm_pilot.py HIDDEN LAYERS LR BATCH MAX_LENGTH SECONDS
    python bench/mlm_pilot.py 256 4 1e-3 32 128 200
    python bench/mlm_pilot.py 128 4 2e-3 32 128 200
"""

from __future__ import annotations

import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from tuneforge.pretraining.config import PretrainConfig  # noqa: E402
from tuneforge.pretraining.corpora import load_corpus, repeat_sources, split_heldout  # noqa: E402
from tuneforge.pretraining.data import mlm_examples  # noqa: E402
from tuneforge.pretraining.model import new_model  # noqa: E402
from tuneforge.pretraining.objectives import evaluate_lm, mlm_loss_fn  # noqa: E402
from tuneforge.pretraining.tokenizer import train_tokenizer  # noqa: E402
from tuneforge.training.batching import collate  # noqa: E402


def main() -> None:
    hidden, layers, lr, batch, max_length, seconds = (int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]),
                                                      int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]))
    torch.set_num_threads(1)
    cfg = PretrainConfig.model_validate({
        "objective": "mlm", "corpus": {"sources": ["peoples-daily", "chinese-reviews-train"]},
        "tokenizer": {"kind": "char", "vocab_size": 6000},
        "architecture": {"layers": layers, "hidden_size": hidden, "heads": max(1, hidden // 64), "dropout": 0.0,
                         "norm": "pre"},
        "max_length": max_length})
    train_docs, held_docs = split_heldout(load_corpus(cfg.corpus.sources, "text"), 0.02, None)
    tokenizer = train_tokenizer([d.text for d in train_docs], cfg.tokenizer)
    data = mlm_examples(repeat_sources(train_docs, {"chinese-reviews-train": 3}), tokenizer, max_length)
    held = mlm_examples(held_docs[:300], tokenizer, 128)
    torch.manual_seed(0)
    model = new_model(cfg, tokenizer)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    loss_fn = mlm_loss_fn(data, tokenizer, 0.15, False)
    order = torch.randperm(len(data)).tolist()
    started, step, shown = time.time(), 0, 0.0
    while time.time() - started < seconds:
        step += 1
        start = (step * batch) % len(order)
        indices = order[start:start + batch] or order[:batch]
        inputs = collate(data.encoded, indices, tokenizer.pad_token_id)
        for group in optimizer.param_groups:
            group["lr"] = lr * min(1.0, step / 150)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = loss_fn(model, {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]},
                           indices)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if time.time() - shown > 60:
            shown = time.time()
            print(f"  {shown - started:.0f}s step {step} loss {loss.item():.2f}", flush=True)
    m = evaluate_lm(model, held, tokenizer, "mlm", precision="bf16", device=torch.device("cpu"), batch_size=64)
    print(f"hidden {hidden}, layers {layers}, lr {lr}, batch {batch}, max_length {max_length}: {step} steps in "
          f"{seconds:.0f} s, held-out masked-token accuracy {m['accuracy']:.3f}, loss {m['loss']:.2f}; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
