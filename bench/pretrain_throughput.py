"""MLM pretraining throughput of the real loss function on one thread: tokens/s for each
LAYERS,HIDDEN,BATCH,MAX_LENGTH,PRECISION spec (10 timed steps after 2 warm-up steps, 4,000 chinese-reviews
training texts, character tokenizer); --profile prints a torch.profiler table of the last spec.

    python bench/pretrain_throughput.py 4,256,16,64,fp32 4,256,16,64,bf16 4,256,64,64,bf16 --profile
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("specs", nargs="+", help="LAYERS,HIDDEN,BATCH,MAX_LENGTH,PRECISION (fp32 or bf16)")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    from tuneforge.models.attention import use_training_attention
    from tuneforge.models.precision import autocast
    from tuneforge.pretraining.config import PretrainConfig
    from tuneforge.pretraining.corpora import load_corpus
    from tuneforge.pretraining.data import mlm_examples
    from tuneforge.pretraining.model import new_model
    from tuneforge.pretraining.objectives import mlm_loss_fn
    from tuneforge.pretraining.tokenizer import train_tokenizer
    from tuneforge.training.batching import batch_order, collate
    from tuneforge.training.fast_dropout import use_fast_dropout
    from tuneforge.training.optim import build_optimizer

    torch.set_num_threads(1)
    docs = load_corpus(["chinese-reviews-train"])[:4000]
    for spec in args.specs:
        layers, hidden, batch, length, precision = spec.split(",")
        cfg = PretrainConfig(corpus={"sources": ["chinese-reviews-train"]}, max_length=int(length),
                             tokenizer={"kind": "char", "vocab_size": 6000},
                             architecture={"layers": int(layers), "hidden_size": int(hidden),
                                           "heads": max(1, int(hidden) // 64)})
        tokenizer = train_tokenizer([d.text for d in docs], cfg.tokenizer)
        torch.manual_seed(0)
        model = new_model(cfg, tokenizer)
        use_training_attention(model)
        use_fast_dropout(model)
        data = mlm_examples(docs, tokenizer, cfg.max_length)
        loss_fn = mlm_loss_fn(data, tokenizer, 0.15, False)
        optimizer = build_optimizer(model, cfg.train)
        batches = batch_order(data.encoded.lengths(), int(batch), seed=0, shuffle=True, group_by_length=True)

        def step(indices: list[int]) -> int:
            inputs = collate(data.encoded, indices, tokenizer.pad_token_id)
            with autocast(precision, torch.device("cpu")):
                loss = loss_fn(model, inputs, indices)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return int(inputs["attention_mask"].sum())

        for indices in batches[:2]:
            step(indices)
        started, tokens = time.perf_counter(), 0
        for indices in batches[2:12]:
            tokens += step(indices)
        seconds = time.perf_counter() - started
        print(f"{spec}: {tokens / seconds:.0f} tokens/s, {seconds / 10:.3f} s/step (load {os.getloadavg()[0]:.1f})",
              flush=True)
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for indices in batches[12:20]:
                step(indices)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


if __name__ == "__main__":
    main()
