"""tuneforge's contrastive few-shot recipe against the ``setfit`` library, same backbone, same samples.

    PYTHONPATH=src HF_HUB_OFFLINE=1 python bench/fewshot_vs_setfit.py --shots 8,16 --seeds 5 [--write-docs]

For each K and each seed: tuneforge's k-shot protocol (``tuneforge.fewshot``, one seed) draws K examples per
class of airline-sentiment's training split, trains configs/airline-fewshot.yaml (plus ``--set`` overrides) and
tests on the whole test split; then ``setfit`` trains on *the same K examples* (read back from the few-shot
folder) at its defaults (``SetFitModel.from_pretrained(<the folder tuneforge resolves "minilm" to>)``, ``Trainer``
with a default ``TrainingArguments``) and predicts the same test split. The two run interleaved, the order
alternating by seed, so that the shared machine's load falls on both alike; one torch thread for both.
Wall time: model loading + training + predicting the test split, for both.

Tuning: ``--first-seed`` picks the seeds; the numbers in docs use seeds 0-4, tuning runs used other seeds
(docs/FEWSHOT.md says which).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from docs_section import write_docs  # noqa: E402

MARKERS = ("<!-- fewshot_vs_setfit -->", "<!-- /fewshot_vs_setfit -->")


def read_jsonl(path: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run_setfit(model_path: str, train: list[dict], test: list[dict], labels: list[str], seed: int,
               workdir: pathlib.Path) -> dict:
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    from tuneforge.evaluation.metrics import classification_metrics

    started = time.perf_counter()
    model = SetFitModel.from_pretrained(model_path)
    # Defaults, except where the run must go (output_dir), the seed (the same seed as tuneforge's run) and no
    # reporting integrations (none reach the network here).
    args = TrainingArguments(output_dir=str(workdir / "setfit"), seed=seed, report_to="none")
    dataset = Dataset.from_dict({"text": [r["text"] for r in train],
                                 "label": [labels.index(r["label"]) for r in train]})
    Trainer(model=model, args=args, train_dataset=dataset).train()
    trained = time.perf_counter()
    predicted = [int(p) for p in model.predict([r["text"] for r in test])]
    seconds = time.perf_counter() - started
    m = classification_metrics([labels.index(r["label"]) for r in test], predicted, labels)
    return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "wall_seconds": seconds,
            "train_seconds": trained - started}


def run_tuneforge(config: pathlib.Path, overrides: list[str], shots: int, seed: int, folder: pathlib.Path) -> dict:
    import tuneforge

    result = tuneforge.fewshot(config, overrides + [f"train.seed={seed}"], shots=shots, seeds=1, output_dir=folder,
                               progress=False)
    row = result.seeds[0]
    return {"accuracy": row["accuracy"], "macro_f1": row["macro_f1"], "wall_seconds": row["wall_seconds"],
            "train_seconds": row["train_seconds"]}


def summarise(rows: list[dict], key: str) -> tuple[float, float]:
    values = [r[key] for r in rows]
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=pathlib.Path, default=ROOT / "configs" / "airline-fewshot.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="An override for tuneforge's recipe (repeatable), e.g. --set contrastive.iterations=8.")
    parser.add_argument("--shots", default="8,16")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=pathlib.Path, default=None, help="Keep the run folders here (default: temp).")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--merge", type=pathlib.Path, action="append", default=[],
                        help="Add the results.json of another run of this script to the table (same seeds).")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from tuneforge.config import TrainConfig, load_config
    from tuneforge.models import resolve_model

    overrides = list(args.overrides) + [f"train.num_threads={args.threads}"]
    cfg = load_config(TrainConfig, path=args.config, overrides=overrides)
    model_path = resolve_model(cfg.model)
    shots_list = [int(s) for s in args.shots.split(",") if s]
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    out = args.out or pathlib.Path(tempfile.mkdtemp(prefix="fewshot-vs-setfit-"))
    print(f"backbone {model_path}; config {args.config.name} {' '.join(args.overrides)}; shots {shots_list}; "
          f"seeds {seeds}; {torch.get_num_threads()} thread(s); load average {os.getloadavg()[0]:.1f}", flush=True)
    results: dict[int, dict[str, list[dict]]] = {}
    for shots in shots_list:
        results[shots] = {"tuneforge": [], "setfit": []}
        for seed in seeds:
            folder = out / f"{shots}shot-seed{seed}"
            order = ["tuneforge", "setfit"] if seed % 2 == 0 else ["setfit", "tuneforge"]
            sample = write_sample(args.config, overrides, shots, seed, folder / "sample")
            row: dict[str, dict] = {}
            for system in order:
                cpu = time.process_time()  # CPU seconds of this process: less sensitive to the others' load
                if system == "tuneforge":
                    row[system] = run_tuneforge(args.config, overrides, shots, seed, folder / "tuneforge")
                    drawn = read_jsonl(folder / "tuneforge" / "data" / f"seed-{seed}.jsonl")
                    if drawn != sample["train"]:
                        raise RuntimeError(f"seed {seed}: tuneforge drew another sample than setfit got")
                else:
                    row[system] = run_setfit(model_path, sample["train"], sample["test"], sample["labels"], seed,
                                             folder)
                row[system]["cpu_seconds"] = time.process_time() - cpu
                row[system]["load"] = os.getloadavg()[0]  # the machine's 1-minute load when the system finished
                results[shots][system].append(row[system])
            (out / "results.json").write_text(json.dumps(results, indent=1))  # kept if the run is cut short
            t, s = row["tuneforge"], row["setfit"]
            print(f"{shots}-shot seed {seed}: tuneforge {t['accuracy']:.4f} ({t['wall_seconds']:.1f} s), setfit "
                  f"{s['accuracy']:.4f} ({s['wall_seconds']:.1f} s); load {os.getloadavg()[0]:.1f}", flush=True)
    for path in args.merge:  # results.json of other invocations (e.g. another K run in parallel)
        results |= {int(k): v for k, v in json.loads(path.read_text()).items()}
    results = dict(sorted(results.items()))
    table = markdown(results, seeds, args)
    print(table)
    if args.write_docs:
        write_docs(ROOT / "docs" / "BENCHMARKS.md", table, MARKERS)
        write_docs(ROOT / "docs" / "FEWSHOT.md", table, MARKERS)


def write_sample(config: pathlib.Path, overrides: list[str], shots: int, seed: int, folder: pathlib.Path) -> dict:
    """The K-shot sample tuneforge's protocol draws for this seed (the same splits, sampler and seed)."""
    from tuneforge.config import TrainConfig, load_config
    from tuneforge.data.source import load_splits
    from tuneforge.fewshot.protocol import _write_examples
    from tuneforge.fewshot.sampler import sample_k_shot

    cfg = load_config(TrainConfig, path=config, overrides=overrides + [f"train.seed={seed}"])
    splits = load_splits(cfg.data, cfg.train.seed)
    ids = sample_k_shot(splits.train, shots, seed)
    folder.mkdir(parents=True, exist_ok=True)
    _write_examples(folder / "train.jsonl", [splits.train[i] for i in ids], ids=ids)
    _write_examples(folder / "test.jsonl", splits.test)
    return {"train": read_jsonl(folder / "train.jsonl"), "test": read_jsonl(folder / "test.jsonl"),
            "labels": splits.labels}


def peer_versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in ("setfit", "sentence-transformers", "datasets"):
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            pass
    return (f"{found[0]} (with {', '.join(found[1:])})" if len(found) > 1 else found[0]) if found else "setfit"


def load_note(results: dict) -> str:
    loads = [r["load"] for by_system in results.values() for rows in by_system.values() for r in rows if "load" in r]
    return f" Machine load average (1 min) during the run: {min(loads):.1f}-{max(loads):.1f}." if loads else ""


def markdown(results: dict, seeds: list[int], args: argparse.Namespace) -> str:
    command = (f"PYTHONPATH={os.environ.get('PYTHONPATH', 'src')} HF_HUB_OFFLINE=1 python bench/fewshot_vs_setfit.py "
               + " ".join(sys.argv[1:]))
    lines = [MARKERS[0], "### Contrastive few-shot: tuneforge vs setfit (airline-sentiment, MiniLM)", "",
             f"`{command}`", "",
             "The peer comes with `pip install -e '.[bench]'` (setfit, and datasets < 4); a PYTHONPATH beyond `src` "
             "above is where setfit was installed for that run.", "",
             "Whole test split (2,000 tweets), one torch thread per system, both interleaved per seed on the shared "
             "2-core machine (the load of each run is stated next to the table). Wall time: model load + training + "
             f"predicting the test split. {peer_versions()} at its defaults. The seeds column says which seeds "
             f"finished (asked for: {len(seeds)} seeds from {seeds[0]}).{load_note(results)}", "",
             "| shots/class | system | seeds | accuracy (mean ± std) | macro-F1 (mean ± std) | wall time, s (mean) "
             "| CPU time, s (mean) |", "|---:|---|---|---:|---:|---:|---:|"]
    for shots, by_system in results.items():
        if not by_system["tuneforge"] or not by_system["setfit"]:
            lines.append(f"| {shots} | (no seed finished for both systems) | | | | | |")
            continue
        for system in ("tuneforge", "setfit"):
            acc, f1, wall = (summarise(by_system[system], k) for k in ("accuracy", "macro_f1", "wall_seconds"))
            n = len(by_system[system])  # seeds run in order, so the first n finished
            done = f"{seeds[0]}-{seeds[n - 1]}" if n > 1 else str(seeds[0])
            cpu = (f"{summarise(by_system[system], 'cpu_seconds')[0]:.1f}"
                   if all("cpu_seconds" in r for r in by_system[system]) else "not recorded")
            pm = (lambda m: f"{m[0]:.4f} ± {m[1]:.4f}") if n > 1 else (lambda m: f"{m[0]:.4f} (one seed)")
            lines.append(f"| {shots} | {system} | {done} | {pm(acc)} | {pm(f1)} | {wall[0]:.1f} | {cpu} |")
        diff_acc = summarise(by_system["tuneforge"], "accuracy")[0] - summarise(by_system["setfit"], "accuracy")[0]
        diff_wall = summarise(by_system["tuneforge"], "wall_seconds")[0] - summarise(by_system["setfit"],
                                                                                      "wall_seconds")[0]
        met = "met" if diff_acc >= 0.03 and diff_wall <= 0 else "NOT met"
        if len(by_system["tuneforge"]) < 5:
            met = f"not established: {len(by_system['tuneforge'])} of 5 seeds"
        lines.append(f"| {shots} | difference | | {100 * diff_acc:+.2f} points | | {diff_wall:+.1f} | |")
        lines.append(f"| {shots} | bar (>= +3 points, no more time) | | {met} | | | |")
    lines.append(MARKERS[1])
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
