"""The training craft on a small training set: does FGM, R-Drop, EMA or an ensemble help MiniLM on 500 tweets?

Trains all-MiniLM-L6-v2 (full fine-tuning) on the same 500 stratified `airline-sentiment` training examples
with several seeds (the seed changes the head's initialisation, dropout and data order, not the examples),
once per variant: baseline, FGM (two strengths), PGD, R-Drop, EMA, label smoothing, EDA augmentation (one
edited copy of each example, `augment: {copies: 1}`: twice the examples per epoch); then averages the baseline
seeds' probabilities (`tuneforge.ensemble`; other variants' too with --ensembles). Reports test accuracy and
macro-F1 as mean ± sample standard deviation over seeds, the mean paired difference to the baseline, and the
training time relative to the baseline (indicative: the CPU is shared).

    PYTHONPATH=src .venv/bin/python bench/craft_airline.py                       # writes runs/craft-airline/
    PYTHONPATH=src .venv/bin/python bench/craft_airline.py --variants baseline,fgm --seeds 0,1,2
    PYTHONPATH=src .venv/bin/python bench/craft_airline.py --write-docs          # the table into docs/CRAFT.md

Finished runs are reused (rerun the command after an interruption). The table is printed and written to
OUT/table.md; with --write-docs it replaces the `<!-- craft_airline -->` section of docs/CRAFT.md.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import time

VARIANTS = {  # train: overrides of each variant, on top of the shared settings below
    "baseline": {},
    "fgm": {"adversarial": {"method": "fgm", "epsilon": 1.0}},
    "fgm_small": {"adversarial": {"method": "fgm", "epsilon": 0.25}},
    "rdrop": {"rdrop_alpha": 1.0},
    "ema": {"ema_decay": 0.99},
    "pgd": {"adversarial": {"method": "pgd", "epsilon": 1.0, "steps": 2}},
    "label_smoothing": {"label_smoothing": 0.1},
    "augment": {},  # the config's augment: section below (AUGMENT), not a train: field
}
AUGMENT = {"augment": {"copies": 1}}  # one EDA copy per example (synonym/insert/swap/delete in turn)
LABELS = {"baseline": "baseline (full fine-tuning)", "fgm": "FGM, epsilon 1.0 per example",
          "fgm_small": "FGM, epsilon 0.25 per example", "rdrop": "R-Drop, alpha 1.0",
          "ema": "EMA of weights, decay 0.99", "pgd": "PGD, epsilon 1.0, 2 steps",
          "label_smoothing": "label smoothing 0.1", "augment": "EDA augmentation, 1 edited copy per example"}
MARKERS = ("<!-- craft_airline -->", "<!-- /craft_airline -->")


def prepare_data(folder: pathlib.Path, samples: int, eval_samples: int) -> dict[str, str]:
    """The fixed training sample (the same for every seed and variant), a validation sample and the test set."""
    from tuneforge.data import export_splits, load_builtin
    from tuneforge.data.splits import subsample_stratified

    if not (folder / "train.jsonl").exists():
        splits = load_builtin("airline-sentiment")
        splits.train = subsample_stratified(splits.train, samples, seed=0)
        splits.validation = subsample_stratified(splits.validation, eval_samples, seed=0)
        export_splits(splits, folder)
    return {name: str(folder / f"{name}.jsonl") for name in ("train", "validation", "test")}


def config(variant: str, seed: int, data: dict[str, str], args, out: pathlib.Path) -> dict:
    return {"name": f"craft-{variant}-{seed}", "model": "minilm", "data": data | {"max_length": 128},
            "method": {"name": "full"},
            "train": {"epochs": args.epochs, "batch_size": 16, "learning_rate": args.lr, "seed": seed,
                      "precision": "auto", "num_threads": args.threads,
                      **VARIANTS[variant]},
            **({"augment": AUGMENT["augment"]} if variant == "augment" else {}),
            "output_dir": str(out / f"{variant}-seed{seed}")}


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f}"


def ensemble_of(variant: str, run_dirs: list[pathlib.Path], out: pathlib.Path):
    """The ensemble of a variant's runs on the test set; its report folder (OUT/ensemble-VARIANT) is reused."""
    import types

    import tuneforge

    folder = out / f"ensemble-{variant}"
    saved = folder / "ensemble.json"
    if saved.exists() and json.loads(saved.read_text())["runs"] == [str(d) for d in run_dirs]:
        report = json.loads(saved.read_text())
        return types.SimpleNamespace(members=report["members"], metrics=report["ensemble"], gain=report["gain"])
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    return tuneforge.ensemble(run_dirs, output_dir=folder, progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("runs/craft-airline"))
    parser.add_argument("--variants", default="baseline,fgm,fgm_small,rdrop,ema,pgd,label_smoothing,augment")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--eval-samples", type=int, default=500)
    parser.add_argument("--epochs", type=float, default=5)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads of each run.")
    parser.add_argument("--ensembles", default="", help="Also ensemble the seeds of these variants (comma-separated).")
    parser.add_argument("--table-only", action="store_true", help="Train nothing: the table of the runs that "
                                                                     "finished (a row per variant with any).")
    parser.add_argument("--ensemble-only", action="store_true", help="Train nothing; compute (and keep) the "
                                                                        "ensembles, print no table.")
    parser.add_argument("--train-only", action="store_true", help="Train, skip the ensemble and the table.")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    import tuneforge

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        sys.exit(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    data = prepare_data(args.out / "data", args.samples, args.eval_samples)
    results: dict[str, list[dict]] = {}
    for variant in variants:
        for seed in seeds:
            cfg = config(variant, seed, data, args, args.out)
            run_dir = pathlib.Path(cfg["output_dir"])
            if (args.table_only or args.ensemble_only) and not (run_dir / "model").is_dir():
                continue  # not trained (yet): the table says which seeds each row has
            if not (run_dir / "model").is_dir():
                if run_dir.exists():  # an interrupted run: start it again
                    import shutil

                    shutil.rmtree(run_dir)
                started = time.time()
                tuneforge.train(cfg, progress=False)
                print(f"{variant} seed {seed}: {time.time() - started:.0f} s", file=sys.stderr)
            metrics = json.loads((run_dir / "metrics.json").read_text())
            results.setdefault(variant, []).append({"dir": run_dir, "seed": seed, **metrics})
    if args.train_only:
        return
    if args.ensemble_only:
        for variant in [v for v in ("baseline", *args.ensembles.split(",")) if len(results.get(v, [])) == len(seeds)]:
            print(variant, ensemble_of(variant, [r["dir"] for r in results[variant]], args.out).metrics["accuracy"])
        return

    if len(results.get("baseline", [])) != len(seeds):
        sys.exit("the table compares with the baseline: include it in --variants, with every seed trained")
    base = {r["seed"]: r for r in results["baseline"]}
    base_seconds = statistics.mean(r["train.seconds"] for r in base.values())
    base_accuracy = statistics.mean(r["test.accuracy"] for r in base.values())
    rows = []
    for variant in [v for v in variants if v in results]:
        runs = results[variant]
        acc = [r["test.accuracy"] for r in runs]
        # The same seed with and without the trick.
        paired = [r["test.accuracy"] - base[r["seed"]]["test.accuracy"] for r in runs]
        delta = "" if variant == "baseline" else f"{100 * statistics.mean(paired):+.1f}"
        label = LABELS[variant] if len(runs) == len(seeds) else \
            f"{LABELS[variant]} (only seed {', '.join(str(r['seed']) for r in runs)} finished in time)"
        rows.append((label, mean_std(acc), delta,
                     mean_std([r["test.macro_f1"] for r in runs]), " / ".join(f"{100 * a:.1f}" for a in acc),
                     f"{statistics.mean(r['train.seconds'] for r in runs) / base_seconds:.2f}x"))
    ensembled = [v for v in ("baseline", *args.ensembles.split(",")) if len(results.get(v, [])) == len(seeds)]
    for variant in ensembled if len(seeds) > 1 else []:  # an ensemble needs two runs at least
        result = ensemble_of(variant, [r["dir"] for r in results[variant]], args.out)
        members = result.members
        for member, run in zip(members, results[variant]):  # the ensemble scores each member like its own run
            if abs(member["accuracy"] - run["test.accuracy"]) > 1e-3:
                print(f"warning: {run['dir']} scores {member['accuracy']:.4f} here, {run['test.accuracy']:.4f} "
                      "in its run", file=sys.stderr)
        gain = 100 * result.gain["accuracy_vs_mean_member"]
        rows.append((f"ensemble of the {len(members)} {variant} runs (mean of probabilities)",
                     f"{100 * result.metrics['accuracy']:.1f} (members {mean_std([m['accuracy'] for m in members])})",
                     f"{100 * (result.metrics['accuracy'] - base_accuracy):+.1f} "
                     f"({gain:+.1f} over its members)",
                     f"{100 * result.metrics['macro_f1']:.1f}", f"one model of {len(members)} seeds",
                     f"{len(members)}x training, {len(members)}x inference"))
    n_test = sum(1 for line in open(data["test"], encoding="utf-8") if line.strip())
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    command = ("HF_HUB_OFFLINE=1 PYTHONPATH=src nice -n 10 .venv/bin/python bench/craft_airline.py "
               + " ".join(sys.argv[1:]))
    table = "\n".join([
        "| variant | test accuracy % | vs baseline (points) | test macro-F1 % | accuracy per seed | training time |",
        "|---|---|---|---|---|---|",
        *(f"| {' | '.join(row)} |" for row in rows)])
    section = (f"{MARKERS[0]}\nMiniLM (all-MiniLM-L6-v2), full fine-tuning, {args.samples} training examples of "
               f"`airline-sentiment` (a stratified sample, the same for every run), {args.epochs:g} epochs, batch 16, "
               f"learning rate {args.lr:g}, bf16 autocast, validation on {args.eval_samples} tweets each epoch (the "
               f"last epoch's weights are kept); seeds {args.seeds} (head initialisation, dropout, data order); "
               f"test set: all {n_test} test tweets. Mean ± sample standard deviation over seeds; \"vs baseline\" is "
               f"the mean difference to the baseline run of the same seed. Training time is relative to the "
               f"baseline's and only indicative: 2 CPU cores shared with other jobs (load average {load} when the "
               f"table was written, {time.strftime('%Y-%m-%d %H:%M')} UTC), one torch thread per run.\n\n"
               f"{table}\n\n    {command.strip()}\n{MARKERS[1]}\n")
    (args.out / "table.md").write_text(section)
    print(section)
    if args.write_docs:
        sys.path.insert(0, str(pathlib.Path(__file__).parent))
        from docs_section import write_docs

        write_docs(pathlib.Path("docs/CRAFT.md"), section, MARKERS)

if __name__ == "__main__":
    main()
