"""tuneforge against the Hugging Face ``Trainer``: the same fine-tune, speed and accuracy side by side.

For every seed and method (``lora``, ``full``) it runs, in this process:
  1. tuneforge (``tuneforge.train``, precision "auto"),
  2. HF ``Trainer`` at its defaults (fp32),
  3. HF ``Trainer`` with ``bf16=True`` (autocast on CPU),
on all-MiniLM-L6-v2 and the built-in ``airline-sentiment`` dataset: the same stratified training
subsample (3,000 by default, drawn with the run seed), the 2,000-example test split, 3 epochs,
batch 32, max length 128, linear schedule with 6% warmup, AdamW with weight decay 0.01.

One JSON line per method goes to stdout; progress and library logs go to stderr.

    cd /work/main && PYTHONPATH=src .venv/bin/python bench/train_vs_hf.py
    PYTHONPATH=src .venv/bin/python bench/train_vs_hf.py --methods lora --seeds 42,43,44 --write-docs
    PYTHONPATH=src .venv/bin/python bench/train_vs_hf.py --only hf --methods lora --epochs 1
"""

from __future__ import annotations

import os

# Set before transformers is imported (hf_reference imports it): no model hub is reachable.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse
import contextlib
import datetime
import json
import pathlib
import re
import shlex
import statistics
import sys
import tempfile
import time

import torch

from docs_section import write_docs  # bench/ is sys.path[0] when run as a script
from hf_reference import LORA, minilm_folder, run_hf
from tuneforge.data import load_builtin, subsample_stratified

REPO = pathlib.Path(__file__).resolve().parent.parent
DATASET = "airline-sentiment"
BATCH_SIZE = 32
MAX_LENGTH = 128
SECTION = ("<!-- train_vs_hf -->", "<!-- /train_vs_hf -->")

# Training FLOPs per token per non-embedding parameter (Kaplan et al. 2020, "Scaling Laws for
# Neural Language Models", section 2.1): the forward pass costs 2N, the backward 4N (2N for the
# gradient with respect to activations, 2N for the gradient with respect to weights). LoRA freezes
# the base weights, so their weight gradients are never computed: 2N + 2N = 4N (the adapters add
# under 1% of N and are ignored). Attention score FLOPs (~ 2 * layers * T * hidden per token) are
# ignored too: at the ~30-50 token lengths of tweets they are a few percent of 6N.
FLOPS_PER_TOKEN_PER_PARAM = {"full": 6, "lora": 4}


def measure_peak_gflops(dtype: torch.dtype, n: int = 2048, runs: int = 20, repeats: int = 3) -> float:
    """GFLOP/s of an n x n matmul in ``dtype`` (2 n^3 FLOPs each): ``runs`` matmuls timed together,
    after 3 warm-up runs; the best of ``repeats`` such timings, so a moment of noise does not lower it."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(runs):
            a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 * runs / best / 1e9


def non_embedding_params() -> int:
    """Parameters of MiniLM for sequence classification outside its embedding tables (~11M of 22.7M)."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(minilm_folder(), num_labels=3)
    return sum(p.numel() for name, p in model.named_parameters() if ".embeddings." not in name)


def fraction_of_peak(method: str, tokens: float, seconds: float, n_params: int, peak_gflops: float) -> float:
    """Achieved training FLOP/s as a fraction of the measured bf16 matmul peak.

    FLOPs = k * N * tokens, k = 6 for full fine-tuning and 4 for LoRA, N = non-embedding
    parameters (see FLOPS_PER_TOKEN_PER_PARAM); divided by the training seconds and the peak.
    """
    flops = FLOPS_PER_TOKEN_PER_PARAM[method] * n_params * tokens
    return flops / seconds / (peak_gflops * 1e9)


def tuneforge_config(method: str, seed: int, lr: float, epochs: int, train_samples: int, out: str) -> dict:
    method_config = {"name": "lora", **LORA} if method == "lora" else {"name": "full"}
    return {
        "name": f"bench-{method}-seed{seed}",
        "model": "minilm",
        "data": {"dataset": DATASET, "max_train_samples": train_samples, "max_length": MAX_LENGTH},
        "method": method_config,
        "train": {
            "epochs": epochs,
            "batch_size": BATCH_SIZE,
            "learning_rate": lr,
            "warmup": 0.06,
            "scheduler": "linear",
            "weight_decay": 0.01,
            "precision": "auto",
            "seed": seed,
        },
        "output_dir": out,
    }


@contextlib.contextmanager
def torch_globals_restored():
    """Undo process-wide torch settings a run may change, so the next run starts from the same state."""
    threads, matmul = torch.get_num_threads(), torch.get_float32_matmul_precision()
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.set_float32_matmul_precision(matmul)


def run_tuneforge(method: str, seed: int, lr: float, epochs: int, train_samples: int) -> dict:
    import tuneforge

    if not hasattr(tuneforge, "train"):
        raise SystemExit(
            "tuneforge.train is not available in this checkout yet; run with --only hf to benchmark "
            "the Hugging Face side alone."
        )
    with tempfile.TemporaryDirectory(prefix="tf-bench-") as out, torch_globals_restored():
        started = time.perf_counter()
        run = tuneforge.train(tuneforge_config(method, seed, lr, epochs, train_samples, out))
        wall = time.perf_counter() - started  # the whole call: loading, evaluations, saving, plots
        metrics = dict(run.metrics)  # read while the run folder still exists
    needed = ["train.samples_per_second", "train.seconds", "test.accuracy"]
    missing = [key for key in needed if key not in metrics]
    if missing:
        raise SystemExit(f"tuneforge run.metrics lacks {missing}; it has {sorted(metrics)}.")
    seconds = metrics["train.seconds"]
    if "train.tokens" in metrics:
        tokens = metrics["train.tokens"]
    elif "train.tokens_per_second" in metrics:
        tokens = metrics["train.tokens_per_second"] * seconds
    else:
        tokens = None
    return {
        "seed": seed,
        "samples_per_second": metrics["train.samples_per_second"],
        "seconds": seconds,
        "accuracy": metrics["test.accuracy"],
        "macro_f1": metrics.get("test.macro_f1"),
        "tokens": tokens,
        "tokens_per_second": metrics.get("train.tokens_per_second"),
        "precision": metrics.get("train.precision"),
        "padding_fraction": metrics.get("train.padding_fraction"),
        "wall_seconds": wall,
    }


def summarize(runs: list[dict]) -> dict | None:
    """Mean speed and mean / sample standard deviation of accuracy over seeds."""
    if not runs:
        return None
    accuracy = [run["accuracy"] for run in runs]
    summary = {
        "samples_per_second": statistics.fmean(run["samples_per_second"] for run in runs),
        "accuracy_mean": statistics.fmean(accuracy),
        "accuracy_std": statistics.stdev(accuracy) if len(accuracy) > 1 else 0.0,
        "seconds": statistics.fmean(run["seconds"] for run in runs),
        "accuracy_per_seed": accuracy,
    }
    if runs[0].get("fraction_of_bf16_peak") is not None:
        summary["fraction_of_bf16_peak"] = statistics.fmean(r["fraction_of_bf16_peak"] for r in runs)
    summary["other_busy_cores_max"] = max(run["other_busy_cores"] for run in runs)
    if runs[0].get("loop_samples_per_second") is not None:
        summary["loop_samples_per_second"] = statistics.fmean(r["loop_samples_per_second"] for r in runs)
    for key in ("macro_f1", "padding_fraction", "mean_padded_length", "mean_tokens_per_example",
                "optimizer", "precision"):
        if runs[0].get(key) is not None:
            values = [run[key] for run in runs]
            summary[key] = statistics.fmean(values) if isinstance(values[0], float) else values[0]
    return summary


def compare(tf: dict | None, hf_default: dict | None, hf_bf16: dict | None) -> tuple[dict, dict]:
    ratios, deltas = {}, {}
    for name, hf in (("hf_default", hf_default), ("hf_bf16", hf_bf16)):
        if tf and hf:
            ratios[f"tuneforge_over_{name}"] = tf["samples_per_second"] / hf["samples_per_second"]
            # against HF's loop time alone (no Trainer setup), the closer match to train.seconds
            ratios[f"tuneforge_over_{name}_loop"] = tf["samples_per_second"] / hf["loop_samples_per_second"]
            deltas[f"tuneforge_minus_{name}_points"] = 100 * (tf["accuracy_mean"] - hf["accuracy_mean"])
    return ratios, deltas


class OtherLoad:
    """How many cores *other* processes kept busy while a block ran: all CPU time the kernel counted
    (/proc/stat) minus this process's own (``os.times``), over the wall time.

    On a 2-core machine a second busy process makes the speed figures meaningless (oversubscribed
    OpenMP threads spin and wait), so every run records this and the script warns about it.
    """

    def __enter__(self) -> OtherLoad:
        self.start = self._sample()
        return self

    def __exit__(self, *exc) -> None:
        self.cores = self._between(self.start, self._sample())

    @staticmethod
    def _sample() -> tuple[float, float, float]:
        try:  # the first line: cpu user nice system idle iowait irq softirq steal ... (clock ticks)
            fields = [int(x) for x in pathlib.Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
        except OSError:
            fields = []
        busy = (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK") if fields else float("nan")
        own = os.times()
        return time.perf_counter(), busy, own.user + own.system

    @staticmethod
    def _between(start: tuple, end: tuple) -> float:
        wall = end[0] - start[0]
        return max(0.0, (end[1] - start[1]) - (end[2] - start[2])) / max(wall, 1e-9)


def busy_cores(seconds: float = 1.0) -> float:
    """Cores other processes keep busy right now, over ``seconds``."""
    with OtherLoad() as load:
        time.sleep(seconds)
    return load.cores


def wait_until_idle(limit: float, log) -> None:
    """Wait (at most ``limit`` seconds) until other processes keep under 0.2 cores busy for 3 s."""
    deadline = time.monotonic() + limit
    while (busy := busy_cores(3.0)) >= 0.2:
        if time.monotonic() > deadline:
            print(f"still {busy:.1f} cores busy after waiting {limit:.0f} s; running anyway", file=log)
            return
        print(f"waiting for an idle machine ({busy:.1f} cores busy)", file=log)


def machine() -> dict:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        match = re.search(r"^model name\s*:\s*(.+)$", pathlib.Path("/proc/cpuinfo").read_text(), re.M)
        cpu = match.group(1).strip() if match else cpu
        flags = re.search(r"^flags\s*:\s*(.+)$", pathlib.Path("/proc/cpuinfo").read_text(), re.M)
        flags = set(flags.group(1).split()) if flags else set()
        extras = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
        cpu += f" ({', '.join(extras)})" if extras else ""
    import peft
    import transformers

    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
    }


def command_line() -> str:
    python = pathlib.Path(sys.executable)
    with contextlib.suppress(ValueError):
        python = python.relative_to(REPO)
    prefix = f"PYTHONPATH={os.environ['PYTHONPATH']} " if os.environ.get("PYTHONPATH") else ""
    return prefix + shlex.join([str(python), *sys.argv])


def markdown_section(results: list[dict], args: argparse.Namespace, info: dict, peaks: dict) -> str:
    def speed(side: dict | None) -> str:
        return f"{side['samples_per_second']:.1f}" if side else "–"

    def acc(side: dict | None) -> str:
        if not side:
            return "–"
        text = f"{100 * side['accuracy_mean']:.2f}"
        return text + (f" ± {100 * side['accuracy_std']:.2f}" if len(args.seeds) > 1 else "")

    def ratio(result: dict, name: str) -> str:
        value = result["ratios"].get(f"tuneforge_over_{name}")
        return f"{value:.2f}×" if value is not None else "–"

    lines = [
        SECTION[0],
        "## tuneforge vs Hugging Face Trainer",
        "",
        f"Command: `{command_line()}`  ",
        f"Date: {datetime.date.today().isoformat()}  ",
        f"Machine: {info['cpu']}, {info['cores']} cores, no GPU; torch {info['torch']}, "
        f"transformers {info['transformers']}, peft {info['peft']}  ",
        f"Measured matmul peak (2048×2048, {peaks['runs']} runs): bf16 {peaks['bf16']:.0f} GFLOP/s, "
        f"fp32 {peaks['fp32']:.0f} GFLOP/s",
        "",
        f"all-MiniLM-L6-v2 on `{DATASET}`: {args.train_samples} training examples (stratified, "
        f"drawn with the run seed), {args.epochs} epochs, batch {BATCH_SIZE}, max length "
        f"{MAX_LENGTH}, linear schedule with 6% warmup, AdamW, weight decay 0.01; LoRA r=8, alpha=16, "
        f"dropout 0.1 on query/value with the classifier trained, lr {args.lora_lr:g}; full "
        f"fine-tuning lr {args.full_lr:g}. Accuracy on the 2,000-example test split, in %, "
        f"{'mean ± std over seeds' if len(args.seeds) > 1 else 'seed'} "
        f"{', '.join(map(str, args.seeds))}. Speed is training samples per second (examples × epochs "
        "÷ training seconds). HF runs keep Trainer defaults otherwise (fused AdamW, gradient clipping "
        "1.0, random batches padded per batch"
        + ("; HF LoRA also trains the pooler, as tuneforge does)." if args.hf_train_pooler else
           "; HF LoRA trains the classifier only, while tuneforge's LoRA also trains BERT's pooler)."),
        "",
        "| method | tuneforge samples/s | HF fp32 samples/s | HF bf16 samples/s | vs HF fp32 | "
        "vs HF bf16 | tuneforge acc | HF fp32 acc | HF bf16 acc | tuneforge % of bf16 peak |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        tf = result["tuneforge"]
        peak = f"{100 * tf['fraction_of_bf16_peak']:.1f}%" if tf and "fraction_of_bf16_peak" in tf else "–"
        lines.append(
            f"| {result['method']} | {speed(tf)} | {speed(result['hf_default'])} | "
            f"{speed(result['hf_bf16'])} | {ratio(result, 'hf_default')} | {ratio(result, 'hf_bf16')} | "
            f"{acc(tf)} | {acc(result['hf_default'])} | {acc(result['hf_bf16'])} | {peak} |"
        )
    loop = [
        f"{r['method']} {r['ratios']['tuneforge_over_hf_default_loop']:.2f}× / "
        f"{r['ratios']['tuneforge_over_hf_bf16_loop']:.2f}×"
        for r in results if "tuneforge_over_hf_bf16_loop" in r["ratios"]
    ]
    lines += [
        "",
        "HF samples/s is Trainer's `train_samples_per_second` (the whole `train()` call); tuneforge's "
        "counts only its training steps. "
        + (f"Against HF's step loop alone (Trainer setup left out), tuneforge is {', '.join(loop)} "
           "(vs fp32 / vs bf16). " if loop else "")
        + "tuneforge batches texts of similar length together (its default); HF pads random batches.",
        "",
        "% of bf16 peak = k × N × tokens ÷ training seconds ÷ measured bf16 matmul peak, with N the "
        "non-embedding parameters and k = 6 for full fine-tuning, 4 for LoRA (frozen weights get no "
        "weight gradients).",
        SECTION[1],
    ]
    return "\n".join(lines) + "\n"




def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    def int_list(text: str) -> list[int]:
        try:
            return [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected whole numbers separated by commas")

    def method_list(text: str) -> list[str]:
        methods = [part.strip() for part in text.split(",") if part.strip()]
        unknown = [m for m in methods if m not in FLOPS_PER_TOKEN_PER_PARAM]
        if unknown or not methods:
            raise argparse.ArgumentTypeError(f"{text!r}: methods are 'lora' and 'full', comma separated")
        return methods

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", type=method_list, default=["lora", "full"], help="default: lora,full")
    parser.add_argument("--seeds", type=int_list, default=[42], help="comma list; default: 42")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-samples", type=int, default=3000)
    parser.add_argument("--only", choices=["tuneforge", "hf", "both"], default="both")
    parser.add_argument("--lora-lr", type=float, default=2e-3)
    parser.add_argument("--full-lr", type=float, default=5e-5)
    parser.add_argument("--hf-train-pooler", action="store_true",
                        help="HF LoRA also trains the pooler, as tuneforge's head does (default: "
                        "classifier only, peft's SEQ_CLS default)")
    parser.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                        help="before each run, wait up to this long for other processes to go idle")
    parser.add_argument("--write-docs", action="store_true",
                        help="replace the train_vs_hf section of --docs-file with a results table")
    parser.add_argument("--docs-file", type=pathlib.Path, default=REPO / "docs" / "BENCHMARKS.md")
    return parser.parse_args(argv)


def run_one(spec: dict) -> dict:
    """One training run (one side, method and seed), with the load other processes put on the CPU."""
    method, seed = spec["method"], spec["seed"]
    with contextlib.redirect_stdout(sys.stderr), torch_globals_restored(), OtherLoad() as load:
        if spec["side"] == "tuneforge":
            result = run_tuneforge(method, seed, spec["lr"], spec["epochs"], spec["train_samples"])
            tokens = result["tokens"]
        else:
            splits = load_builtin(DATASET)
            train = subsample_stratified(splits.train, spec["train_samples"], seed=seed)
            result = run_hf(method, train, splits.test, splits.labels, bf16=spec["side"] == "hf_bf16", seed=seed,
                            lr=spec["lr"], epochs=spec["epochs"], batch_size=BATCH_SIZE, max_length=MAX_LENGTH,
                            train_pooler=spec["hf_train_pooler"])
            tokens = result["train_tokens_real"]  # real (unpadded) tokens: the useful work, as for tuneforge
    result["other_busy_cores"] = load.cores
    if tokens is not None:
        result["fraction_of_bf16_peak"] = fraction_of_peak(method, tokens, result["seconds"], spec["n_params"],
                                                           spec["peak_bf16"])
    return result


def run_in_subprocess(spec: dict, log) -> dict:
    """Each run gets a fresh process: in one long process, later runs slowed down by up to 25% (both
    tuneforge and HF; memory grew to 3 GB), which would make the order of runs decide the figures."""
    import subprocess

    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], stdout=subprocess.PIPE,
                          stderr=log, text=True, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"run {spec} failed with exit code {proc.returncode}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        print("RESULT " + json.dumps(run_one(json.loads(sys.argv[2]))), flush=True)
        return
    args = parse_args()
    stdout = sys.stdout
    log = sys.stderr

    if args.wait_idle:
        wait_until_idle(args.wait_idle, log)
    busy = busy_cores()
    if busy > 0.3:
        print(f"WARNING: other processes kept {busy:.1f} cores busy just now; speed figures will be "
              "low and noisy. Run on an idle machine.", file=log)
    peaks = {"runs": 20, "bf16": measure_peak_gflops(torch.bfloat16), "fp32": measure_peak_gflops(torch.float32)}
    print(f"matmul peak: bf16 {peaks['bf16']:.0f} GFLOP/s, fp32 {peaks['fp32']:.0f} GFLOP/s", file=log)
    with contextlib.redirect_stdout(log):  # Trainer and progress bars print to stdout
        n_params = non_embedding_params()
    print(f"non-embedding parameters: {n_params:,}", file=log)

    runs: dict[tuple[str, str], list[dict]] = {}
    def report(seeds_done: list[int], final: bool) -> None:
        done = argparse.Namespace(**{**vars(args), "seeds": seeds_done})
        results = []
        for method in args.methods:
            tf, hf_default, hf_bf16 = (summarize(runs.get((method, side), [])) for side in
                                       ("tuneforge", "hf_default", "hf_bf16"))
            ratios, deltas = compare(tf, hf_default, hf_bf16)
            result = {
                "method": method,
                "seeds": seeds_done,
                "epochs": args.epochs,
                "train_samples": args.train_samples,
                "tuneforge": tf,
                "hf_default": hf_default,
                "hf_bf16": hf_bf16,
                "ratios": ratios,
                "accuracy_deltas": deltas,
                "peak_gflops": {"bf16": peaks["bf16"], "fp32": peaks["fp32"]},
                "non_embedding_params": n_params,
                "busy_cores_before": busy,
            }
            noisy = [side for side in ("tuneforge", "hf_default", "hf_bf16")
                     if result[side] and result[side]["other_busy_cores_max"] > 0.3]
            if noisy:
                print(f"WARNING: {method}: other processes were busy during {', '.join(noisy)} "
                      "(see other_busy_cores_max); treat those speeds as unreliable.", file=log)
            results.append(result)
            if final:
                print(json.dumps(result), file=stdout, flush=True)

        if args.write_docs:
            write_docs(args.docs_file, markdown_section(results, done, machine(), peaks), SECTION)
            print(f"wrote the train_vs_hf section of {args.docs_file}", file=log)

    for index, seed in enumerate(args.seeds):
        for method in args.methods:
            lr = args.lora_lr if method == "lora" else args.full_lr
            sides = (["tuneforge"] if args.only in ("tuneforge", "both") else []) + \
                (["hf_default", "hf_bf16"] if args.only in ("hf", "both") else [])
            for side in sides:
                if args.wait_idle:
                    wait_until_idle(args.wait_idle, log)
                print(f"[seed {seed}] {method}: {side}", file=log, flush=True)
                spec = {"side": side, "method": method, "seed": seed, "lr": lr, "epochs": args.epochs,
                        "train_samples": args.train_samples, "hf_train_pooler": args.hf_train_pooler,
                        "n_params": n_params, "peak_bf16": peaks["bf16"]}
                result = run_in_subprocess(spec, log)
                runs.setdefault((method, side), []).append(result)
                print(f"  {json.dumps(result)}", file=log, flush=True)
        # report after every seed, so an interrupted benchmark still documents the seeds it finished
        report(args.seeds[:index + 1], final=index == len(args.seeds) - 1)

if __name__ == "__main__":
    main()
