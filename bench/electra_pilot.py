"""Short ELECTRA pilot (objective: electra's loss and held-out evaluation, tuneforge.pretraining.electra) on the
chinese-reviews TRAINING split alone (14,000 of its reviews, 2% of them held out), 64-token sequences, batch
32, one thread, bf16, lr with 50 warmup steps then constant: does the discriminator leave chance (RTD AUC 0.5)?

    python bench/electra_pilot.py LR LAMBDA STEPS HIDDEN LAYERS [EVAL_EVERY]
    python bench/electra_pilot.py 5e-4 50 600 256 4 100
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
from tuneforge.pretraining.corpora import load_corpus, split_heldout  # noqa: E402
from tuneforge.pretraining.data import mlm_examples  # noqa: E402
from tuneforge.pretraining.electra import electra_loss_fn, evaluate_electra, new_electra  # noqa: E402
from tuneforge.pretraining.tokenizer import train_tokenizer  # noqa: E402
from tuneforge.training.batching import collate  # noqa: E402


def main() -> None:
    lr, weight, steps, hidden, layers = (float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]),
                                         int(sys.argv[5]))
    every = int(sys.argv[6]) if len(sys.argv) > 6 else 50
    torch.set_num_threads(1)
    cfg = PretrainConfig.model_validate({
        "objective": "electra", "corpus": {"sources": ["chinese-reviews-train"]},
        "tokenizer": {"kind": "char", "vocab_size": 3000},
        "architecture": {"layers": layers, "hidden_size": hidden, "heads": max(1, hidden // 64), "dropout": 0.0},
        "electra": {"discriminator_weight": weight}, "max_length": 64})
    train_docs, held_docs = split_heldout(load_corpus(cfg.corpus.sources, "text"), 0.02, 14000)
    tokenizer = train_tokenizer([d.text for d in train_docs], cfg.tokenizer)
    data, held = mlm_examples(train_docs, tokenizer, 64), mlm_examples(held_docs[:100], tokenizer, 64)
    torch.manual_seed(0)
    model = new_electra(cfg, tokenizer)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    loss_fn = electra_loss_fn(tokenizer, 0.15, weight)
    started = time.time()
    for step in range(1, steps + 1):
        indices = torch.randint(len(data), (32,)).tolist()
        inputs = collate(data.encoded, indices, tokenizer.pad_token_id)
        for group in optimizer.param_groups:
            group["lr"] = lr * min(1.0, step / 50)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = loss_fn(model, {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]},
                           indices)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % every == 0:
            m = evaluate_electra(model, held, tokenizer, precision="bf16", device=torch.device("cpu"), batch_size=64,
                                 probability=0.15, weight=weight)
            print(f"step {step}: loss {loss.item():.2f}, generator masked accuracy {m['accuracy']:.3f}, RTD accuracy "
                  f"{m['rtd_accuracy']:.3f} (all-original {1 - m['replaced_share']:.3f}), RTD AUC {m['rtd_auc']:.3f}; "
                  f"{time.time() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
