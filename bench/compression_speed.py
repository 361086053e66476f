"""Inference speed of several run folders, timed in turns so they share the machine's conditions.

``tuneforge prune`` and ``tuneforge distill`` time each model once, minutes apart; on a busy machine those
numbers move with the load. This script loads every run, then times one pass over the same test texts for
each model in turn, several rounds, and keeps each model's best pass:

    PYTHONPATH=src python bench/compression_speed.py runs/compare-airline/full runs/compress-airline/heads-0.5 \
        --texts 512 --rounds 5 [--precision fp32]
"""

from __future__ import annotations

import argparse
import time

import torch

import tuneforge
from tuneforge.data.source import load_splits
from tuneforge.evaluation.inference import predict_proba


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--precision", default=None, help="fp32 or bf16 (default: each run's own)")
    args = parser.parse_args()

    runs = [tuneforge.load(path, precision=args.precision) for path in args.runs]
    first = runs[0]
    splits = load_splits(first.config.data, first.config.train.seed)
    texts = splits.test[:args.texts]
    data = {run.dir: run._encode(texts) for run in runs}
    best = {run.dir: float("inf") for run in runs}

    def infer(run) -> None:
        predict_proba(run.model, data[run.dir], batch_size=args.batch_size, precision=run.precision,
                      pad_id=run.tokenizer.pad_token_id or 0)

    for run in runs:  # warm-up: every batch shape once
        infer(run)
    for _ in range(args.rounds):
        for run in runs:
            started = time.perf_counter()
            infer(run)
            best[run.dir] = min(best[run.dir], time.perf_counter() - started)
    print(f"{len(texts)} test texts, batch {args.batch_size}, best of {args.rounds} rounds, "
          f"{torch.get_num_threads()} threads")
    print("| run | parameters | precision | texts/s |\n|---|---|---|---|")
    for run in runs:
        params = sum(p.numel() for p in run.model.parameters())
        print(f"| {run.dir} | {params:,} | {run.precision} | {len(texts) / best[run.dir]:.0f} |")


if __name__ == "__main__":
    main()
