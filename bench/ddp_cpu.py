"""Scale-out on CPU: the same MiniLM fine-tune in one process, in two under torchrun (gloo), and with
gradient checkpointing; training throughput, wall time, peak memory and test accuracy of each.

    HF_HUB_OFFLINE=1 PYTHONPATH=src nice -n 10 .venv/bin/python bench/ddp_cpu.py [--samples 1024] [--out DIR]

Each variant runs as its own command (`python -m tuneforge train` or `torchrun ... -m tuneforge train`), so the
peak memory is that command's process (rank 0's under torchrun). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import yaml


def prepare_data(folder: pathlib.Path, samples: int) -> dict[str, str]:
    from tuneforge.data import export_splits, load_builtin
    from tuneforge.data.splits import subsample_stratified

    if not (folder / "train.jsonl").exists():
        splits = load_builtin("airline-sentiment")
        splits.train = subsample_stratified(splits.train, samples, seed=0)
        splits.validation = subsample_stratified(splits.validation, 200, seed=0)
        splits.test = subsample_stratified(splits.test, 500, seed=0)
        export_splits(splits, folder)
    return {name: str(folder / f"{name}.jsonl") for name in ("train", "validation", "test")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("runs/ddp-cpu"))
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--method", default="full")
    parser.add_argument("--only", default="", help="Run only the variants whose label contains this text.")
    args = parser.parse_args()
    data = prepare_data(args.out / "data", args.samples)
    config = {"name": "ddp-cpu", "model": "minilm", "data": data | {"max_length": 128},
              "method": {"name": args.method},
              "train": {"epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": 5e-5,
                        "precision": "auto", "seed": 0}}
    config_file = args.out / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    one = [sys.executable, "-m", "tuneforge", "train", str(config_file), "--quiet"]
    two = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "tuneforge",
           "train", str(config_file), "--quiet"]
    variants = {
        "1 process, 2 threads": (one, {"OMP_NUM_THREADS": "2"}, []),
        "1 process, 1 thread": (one, {"OMP_NUM_THREADS": "1"}, []),
        "2 processes (torchrun, gloo), 1 thread each": (two, {"OMP_NUM_THREADS": "1"}, []),
        "1 process, 2 threads, gradient checkpointing": (one, {"OMP_NUM_THREADS": "2"},
                                                         ["train.gradient_checkpointing=true"]),
    }
    rows = []
    for label, (cmd, extra_env, overrides) in variants.items():
        if args.only not in label:
            continue
        run_dir = args.out / label.replace(" ", "-").replace(",", "").replace("(", "").replace(")", "")
        shutil.rmtree(run_dir, ignore_errors=True)
        started = time.time()
        done = subprocess.run([*cmd, f"output_dir={run_dir}", *overrides], env=env | extra_env,
                              capture_output=True, text=True)
        wall = time.time() - started
        if done.returncode != 0:
            sys.exit(f"{label} failed:\n{done.stderr[-4000:]}")
        m = json.loads((run_dir / "metrics.json").read_text())
        rows.append((label, f"{m['train.samples_per_second']:.1f}", f"{m['train.seconds']:.1f}", f"{wall:.0f}",
                     f"{m['train.peak_memory_mb']:.0f}", f"{100 * m['test.accuracy']:.1f}"))
        print(label, rows[-1], file=sys.stderr)
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"MiniLM, {args.method}, {args.samples} airline tweets, {args.epochs:g} epoch(s), global batch "
          f"{args.batch_size}, bf16 autocast; load average {load} at the end, {time.strftime('%Y-%m-%d %H:%M')} UTC\n")
    print("| variant | training samples/s | training s | command wall s | peak RSS MB (rank 0) | test accuracy % |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
