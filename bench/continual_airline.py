"""Continual learning on MiniLM: airline tweets (task A), then other tweets (task B). How much of A is forgotten?

Task A is `airline-sentiment`, task B `tweets-sentiment` (the same corpus's tweets on other topics: the same three
labels, another domain and label balance). Per seed, all-MiniLM-L6-v2 is fine-tuned on A, then on B four ways:

    plain       full fine-tuning of A's model on B           continual.previous=A
    rehearsal   the same, with a sample of A's training set  continual.rehearsal.samples=R
    ewc         the same, with the EWC penalty               continual.ewc.strength=S
    adapters    one LoRA run per task on the frozen MiniLM, loaded together: tuneforge.load({"A": .., "B": ..})

and reports the accuracy on A's test sample after A and after B, and B's accuracy (a remedy that stops B from
being learnt is no remedy), mean ± sample standard deviation over seeds.

    HF_HUB_OFFLINE=1 PYTHONPATH=src nice -n 10 .venv/bin/python bench/continual_airline.py  # runs/continual-airline
    HF_HUB_OFFLINE=1 PYTHONPATH=src nice -n 10 .venv/bin/python bench/continual_airline.py --write-docs

Finished runs are reused (rerun the command after an interruption). The table goes to OUT/table.md and, with
--write-docs, into the `<!-- continual_airline -->` section of docs/CONTINUAL.md.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import statistics
import sys
import time

ROUTES = ("plain", "rehearsal", "ewc", "rehearsal_ewc", "adapters", "b_only")
LABELS = {"plain": "plain fine-tuning on B", "adapters": "adapter per task (LoRA r=8, frozen MiniLM)",
          "b_only": "reference: B alone from MiniLM (never saw A)"}
MARKERS = ("<!-- continual_airline -->", "<!-- /continual_airline -->")


def prepare_data(folder: pathlib.Path, dataset: str, args) -> dict[str, str]:
    """A fixed stratified sample of each split (the same for every seed and route), written as JSON lines."""
    from tuneforge.data import export_splits, load_builtin
    from tuneforge.data.splits import subsample_stratified

    if not (folder / "train.jsonl").exists():
        splits = load_builtin(dataset)
        splits.train = subsample_stratified(splits.train, args.train, seed=0)
        splits.validation = subsample_stratified(splits.validation, args.eval_samples, seed=0)
        splits.test = subsample_stratified(splits.test, args.test, seed=0)
        export_splits(splits, folder)
    return {name: str(folder / f"{name}.jsonl") for name in ("train", "validation", "test")}


def config(name: str, data: dict[str, str], seed: int, args, out: pathlib.Path, method: str = "full",
           continual: dict | None = None) -> dict:
    cfg = {"name": name, "model": "minilm", "data": data | {"max_length": 128}, "method": {"name": method},
           "train": {"epochs": args.epochs, "batch_size": 16, "seed": seed, "precision": "auto",
                     "learning_rate": args.lr if method == "full" else args.lora_lr, "num_threads": args.threads},
           "output_dir": str(out / f"{name}-seed{seed}")}
    if continual is not None:
        cfg["continual"] = continual
    return cfg


class NotTrained(Exception):
    """--table-only: a run of this seed and route has not finished (the row counts the seeds that have)."""


def trained(cfg: dict, table_only: bool = False) -> pathlib.Path:
    """The run folder of ``cfg``, trained now unless it finished before."""
    import tuneforge

    run_dir = pathlib.Path(cfg["output_dir"])
    if table_only and not (run_dir / "model").is_dir():
        raise NotTrained(run_dir.name)
    if not (run_dir / "model").is_dir():
        if run_dir.exists():  # an interrupted run: start it again
            shutil.rmtree(run_dir)
        started = time.time()
        tuneforge.train(cfg, progress=False)
        print(f"{run_dir.name}: {time.time() - started:.0f} s", file=sys.stderr)
    return run_dir


def metrics(run_dir: pathlib.Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def adapters(a_dir: pathlib.Path, b_dir: pathlib.Path, a_data: dict, b_data: dict) -> dict:
    """Both LoRA runs loaded on one backbone; A scored through A's adapter after B exists, B through B's."""
    import tuneforge
    from tuneforge.data import read_examples

    saved = b_dir / "adapters.json"
    if saved.exists():
        return json.loads(saved.read_text())
    both = tuneforge.load({"A": a_dir, "B": b_dir})
    result = {"a_after": both.evaluate(read_examples(a_data["test"]), adapter="A")["accuracy"],
              "b": both.evaluate(read_examples(b_data["test"]), adapter="B")["accuracy"],
              "b_on_a": both.evaluate(read_examples(a_data["test"]), adapter="B")["accuracy"]}
    saved.write_text(json.dumps(result))
    return result


def score(route: str, seed: int, args, a_data: dict, b_data: dict, continual: dict) -> dict:
    """A's accuracy after A and after B, and B's, for one route and seed (training what is not finished)."""
    a_full = trained(config("a-full", a_data, seed, args, args.out), args.table_only)
    if route in continual:  # the run's name holds its settings, so a finished run is reused only for them
        b = trained(config(f"b-{route}", b_data, seed, args, args.out,
                           continual={"previous": str(a_full), **continual[route]}), args.table_only)
        m = metrics(b)
        return {"seed": seed, "a_before": metrics(a_full)["test.accuracy"],
                "a_after": m["continual.previous_test.accuracy"], "b": m["test.accuracy"],
                "seconds": m["train.seconds"]}
    if route == "adapters":
        a_lora = trained(config("a-lora", a_data, seed, args, args.out, method="lora"), args.table_only)
        b_lora = trained(config("b-lora", b_data, seed, args, args.out, method="lora"), args.table_only)
        scores = adapters(a_lora, b_lora, a_data, b_data)
        return {"seed": seed, "a_before": metrics(a_lora)["test.accuracy"], "a_after": scores["a_after"],
                "b": scores["b"], "seconds": metrics(b_lora)["train.seconds"]}
    # b_only: B from MiniLM, and what it scores on A without ever seeing A
    import tuneforge
    from tuneforge.data import read_examples

    b = trained(config("b-only", b_data, seed, args, args.out), args.table_only)
    on_a = tuneforge.load(b).evaluate(read_examples(a_data["test"]))["accuracy"]
    return {"seed": seed, "a_before": float("nan"), "a_after": on_a, "b": metrics(b)["test.accuracy"],
            "seconds": metrics(b)["train.seconds"]}


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("runs/continual-airline"))
    parser.add_argument("--routes", default="plain,rehearsal,ewc,adapters")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--train", type=int, default=1000, help="training examples of each task")
    parser.add_argument("--eval-samples", type=int, default=300)
    parser.add_argument("--test", type=int, default=1000, help="test examples of each task")
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--lr", type=float, default=1e-4, help="learning rate of full fine-tuning")
    parser.add_argument("--lora-lr", type=float, default=2e-3)
    parser.add_argument("--rehearsal", type=int, default=200)
    parser.add_argument("--ewc", default="1e5", help="EWC strength lambda; several (comma-separated): a row each")
    parser.add_argument("--fisher-samples", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--table-only", action="store_true", help="Train nothing: the table of the finished runs")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()

    routes = [r.strip() for r in args.routes.split(",") if r.strip()]
    if unknown := [r for r in routes if r not in ROUTES]:
        sys.exit(f"unknown routes {unknown}; choose from {', '.join(ROUTES)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    a_data = prepare_data(args.out / "data-a", "airline-sentiment", args)
    b_data = prepare_data(args.out / "data-b", "tweets-sentiment", args)
    strengths = [float(x) for x in args.ewc.split(",")]
    ewc = {f"ewc{lam:g}": {"ewc": {"strength": lam, "fisher_samples": args.fisher_samples}} for lam in strengths}
    rehearsal = {"rehearsal": {"samples": args.rehearsal}}
    continual = {"plain": {}, f"rehearsal{args.rehearsal}": rehearsal, **ewc,
                 f"rehearsal{args.rehearsal}-ewc{strengths[0]:g}": rehearsal | next(iter(ewc.values()))}
    expanded = {"plain": ["plain"], "rehearsal": [f"rehearsal{args.rehearsal}"], "ewc": list(ewc),
                "rehearsal_ewc": [f"rehearsal{args.rehearsal}-ewc{strengths[0]:g}"], "adapters": ["adapters"],
                "b_only": ["b_only"]}
    routes = [variant for route in routes for variant in expanded[route]]
    rows: dict[str, list[dict]] = {r: [] for r in routes}
    for seed in seeds:
        for route in routes:
            try:
                rows[route].append(score(route, seed, args, a_data, b_data, continual))
            except NotTrained as missing:
                print(f"not finished: {missing}", file=sys.stderr)
    def label(route: str) -> str:
        if route.startswith("rehearsal") and "ewc" in route:
            return f"rehearsal ({args.rehearsal} examples of A) + EWC (lambda {strengths[0]:g})"
        if route.startswith("rehearsal"):
            return f"rehearsal ({args.rehearsal} examples of A)"
        if route.startswith("ewc"):
            return f"EWC (lambda {route[3:]}, Fisher of {args.fisher_samples} examples of A)"
        return LABELS[route]

    lines = ["| route | seeds | A accuracy after A % | A accuracy after B % | change on A (points) | B accuracy % | "
             "B training seconds |", "|---|---|---|---|---|---|---|"]
    for route in [r for r in routes if rows[r]]:
        runs = rows[route]
        change = [r["a_after"] - r["a_before"] for r in runs]
        before = "-" if route == "b_only" else mean_std([r["a_before"] for r in runs])
        delta = "-" if route == "b_only" else f"{100 * statistics.mean(change):+.1f}"
        lines.append(f"| {label(route)} | {', '.join(str(r['seed']) for r in runs)} | {before} | "
                     f"{mean_std([r['a_after'] for r in runs])} | {delta} | {mean_std([r['b'] for r in runs])} | "
                     f"{statistics.mean(r['seconds'] for r in runs):.0f} |")
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    command = "HF_HUB_OFFLINE=1 PYTHONPATH=src nice -n 10 .venv/bin/python bench/continual_airline.py " \
        + " ".join(a for a in sys.argv[1:] if a not in ("--table-only", "--write-docs"))
    section = (f"{MARKERS[0]}\nall-MiniLM-L6-v2; task A `airline-sentiment`, task B `tweets-sentiment`, "
               f"{args.train} training examples each (a fixed stratified sample), validation {args.eval_samples}, "
               f"test {args.test} of each (fixed stratified samples of the test splits); {args.epochs:g} epoch(s) "
               f"per task, batch 16, learning rate {args.lr:g} (full) / {args.lora_lr:g} (LoRA), bf16 autocast; "
               f"seeds {args.seeds} (a row lists those that finished); mean ± sample standard deviation over "
               f"seeds. \"change on A\" is the mean "
               f"paired difference (after B minus after A, same seed). Seconds are indicative: 2 shared CPU cores "
               f"(load average {load} when the table was written, {time.strftime('%Y-%m-%d %H:%M')} UTC).\n\n"
               + "\n".join(lines) + f"\n\n    {command.strip()}\n{MARKERS[1]}\n")
    (args.out / "table.md").write_text(section)
    print(section)
    if args.write_docs:
        sys.path.insert(0, str(pathlib.Path(__file__).parent))
        from docs_section import write_docs

        write_docs(pathlib.Path("docs/CONTINUAL.md"), section, MARKERS)


if __name__ == "__main__":
    main()
