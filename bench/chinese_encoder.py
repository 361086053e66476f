"""Does pretraining our own Chinese encoder pay? Fine-tune it on chinese-reviews against the same architecture
randomly initialised (same fine-tuning config and budget), and a character n-gram TF-IDF + logistic regression
baseline on the same fixed splits; write the table with the commands to docs/PRETRAINING.md.

    python bench/chinese_encoder.py --out runs/bench-chinese [--pretrained runs/chinese-encoder] [--write-docs]
    python bench/chinese_encoder.py --config configs/chinese-encoder-electra.yaml --out runs/bench-chinese-electra \
        --pretrained runs/chinese-encoder-electra --write-docs        # objective: electra (its own docs table)

Steps whose run folder already exists under --out are reused (so an interrupted bench continues). Without
--pretrained the pretraining itself runs first (--config, default configs/chinese-encoder.yaml; ~15-30 minutes
on 2 cores). The random-init arm is --config's model with --init-only; the docs section is named after --config.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from docs_section import write_docs  # noqa: E402

FINETUNE = "configs/chinese-reviews-encoder.yaml"


def ngram_baseline() -> dict:
    """TF-IDF over character 1-3-grams + logistic regression; C picked on the validation split."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from tuneforge.data import load_builtin

    splits = load_builtin("chinese-reviews")
    started = time.perf_counter()
    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True)
    x_train = vec.fit_transform([e.text for e in splits.train])
    x_val, x_test = (vec.transform([e.text for e in s]) for s in (splits.validation, splits.test))
    y = {name: [e.label for e in getattr(splits, name)] for name in ("train", "validation", "test")}
    best = None
    for c in (1.0, 3.0, 10.0, 30.0, 100.0):
        model = LogisticRegression(C=c, max_iter=2000).fit(x_train, y["train"])
        val = model.score(x_val, y["validation"])
        if best is None or val > best[0]:
            best = (val, c, model)
    val, c, model = best
    return {"validation": val, "test": model.score(x_test, y["test"]), "C": c,
            "seconds": time.perf_counter() - started, "features": x_train.shape[1]}


def run(command: list[str]) -> None:
    print("$", " ".join(command), flush=True)
    subprocess.run([sys.executable, "-m", "tuneforge.cli.main", *command], check=True, cwd=REPO,
                   env={**os.environ, "PYTHONPATH": str(REPO / "src")})


def metrics(folder: pathlib.Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def validation_curve(folder: pathlib.Path) -> list[float]:
    """Validation accuracy at each evaluation of a fine-tuning run (log.jsonl): what chose its best epoch."""
    records = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines() if line.strip()]
    return [r["accuracy"] for r in records if r.get("type") == "eval"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "runs/bench-chinese")
    parser.add_argument("--pretrained", type=pathlib.Path, help="A finished `tuneforge pretrain` run folder.")
    parser.add_argument("--config", default="configs/chinese-encoder.yaml",
                        help="The pretraining config (repository-relative); its name names the docs section "
                             "(with --finetune-set, followed by the --out folder's name).")
    parser.add_argument("--threads", type=int, default=None, help="train.num_threads of every run.")
    parser.add_argument("--finetune-set", action="append", default=[], metavar="KEY=VALUE",
                        help="An override of the fine-tuning config, for BOTH arms (e.g. train.learning_rate=1e-3); "
                             "repeatable. Choose it on validation accuracy only.")
    parser.add_argument("--random-finetune-set", action="append", default=None, metavar="KEY=VALUE",
                        help="Overrides for the random-init arm alone, instead of --finetune-set's (e.g. its own "
                             "learning rate, chosen on ITS validation accuracy); repeatable.")
    parser.add_argument("--write-docs", action="store_true", help="Write the table to docs/PRETRAINING.md.")
    args = parser.parse_args()
    pretrain_config = args.config
    stem = pathlib.Path(pretrain_config).stem
    random_set = args.finetune_set if args.random_finetune_set is None else args.random_finetune_set
    # the docs section: one per comparison
    name = stem + (f"-{args.out.name}" if args.finetune_set or random_set else "")
    markers = (f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->")
    threads = [f"train.num_threads={args.threads}"] if args.threads else []
    pretrained = args.pretrained or args.out / "pretrain"
    if not (pretrained / "model").is_dir():
        run(["pretrain", pretrain_config, f"output_dir={pretrained}", *threads, "--quiet"])
    random_init = args.out / "random-init"
    if not (random_init / "model").is_dir():
        run(["pretrain", pretrain_config, f"output_dir={random_init}", "--init-only", "--quiet"])
    rows = {}
    arm_overrides = {"pretrained": args.finetune_set, "random init": random_set}
    for label, base in (("pretrained", pretrained), ("random init", random_init)):
        target = args.out / f"finetune-{label.replace(' ', '-')}"
        if not (target / "model").is_dir():
            run(["train", FINETUNE, f"model={base / 'model'}", f"output_dir={target}", *arm_overrides[label],
                 *threads, "--quiet"])
        m = metrics(target)
        rows[label] = {"overrides": arm_overrides[label], "test": m["test.accuracy"],
                       "validation": m["validation.accuracy"],
                       "seconds": m["train.seconds"], "curve": validation_curve(target)}
    base = ngram_baseline()
    p = metrics(pretrained)
    if p.get("objective") == "electra":
        size = (f"discriminator (the encoder fine-tuned) {p['parameters']:,} parameters + generator "
                f"{p['generator_parameters']:,} more (embeddings shared; vocabulary {p['vocab_size']:,})")
        learned = (f"held-out replaced-token detection accuracy {p['before.rtd_accuracy']:.3f} -> "
                   f"{p['heldout.rtd_accuracy']:.3f} (all-original would score {1 - p['heldout.replaced_share']:.3f}), "
                   f"AUC {p['before.rtd_auc']:.3f} -> {p['heldout.rtd_auc']:.3f}; the generator's masked-token "
                   f"accuracy {p['before.accuracy']:.3f} -> {p['heldout.accuracy']:.3f}")
    else:
        size = f"{p['parameters']:,} parameters (vocabulary {p['vocab_size']:,})"
        if "embedding_init.seconds" in p:
            size += (f", token embeddings first set from co-occurrence statistics (embedding_init, "
                     f"{p['embedding_init.rows']:,} rows in {p['embedding_init.seconds']:.0f} s, in the wall time)")
        if "transfer.seconds" in p:
            rows_from = {k.split(".")[-1]: v for k, v in p.items() if k.startswith("transfer.rows.")}
            size += (f"; layers from {p.get('transfer.model', p['transfer.source'])} and token embeddings by "
                     f"vocabulary transfer ({p['transfer.dictionary']}, "
                     f"{p['transfer.dictionary_entries']:,} entries, first {p['transfer.senses']} gloss(es): "
                     f"{rows_from['dictionary']:,} rows from a gloss, {rows_from['characters']:,} from their "
                     f"characters' glosses, {rows_from['source_pieces']:,} as the source spells them, "
                     f"{rows_from['special']:,} special, {rows_from['random']:,} random; "
                     f"{p['transfer.seconds']:.0f} s, in the wall time)")
        learned = (f"held-out masked-token accuracy {p['before.accuracy']:.3f} -> {p['heldout.accuracy']:.3f}, "
                   f"perplexity {p['before.perplexity']:.0f} -> {p['heldout.perplexity']:.1f}")
    load = os.getloadavg()
    table = ["| model | test accuracy | validation accuracy (chosen) | validation at each evaluation | "
             "fine-tuning seconds |", "|---|---|---|---|---|"]
    for label, r in rows.items():
        curve = ", ".join(f"{v:.4f}" for v in r["curve"])
        own = f" ({', '.join(r['overrides'])})" if random_set != args.finetune_set and r["overrides"] else ""
        table.append(f"| our encoder, {label} + fine-tuning{own} | **{r['test']:.4f}** | {r['validation']:.4f} | "
                     f"{curve} | {r['seconds']:.0f} |")
    table.append(f"| char 1-3-gram TF-IDF + logistic regression (C={base['C']}, chosen on validation) | "
                 f"**{base['test']:.4f}** | {base['validation']:.4f} | | {base['seconds']:.0f} (fit, all C) |")
    gain = 100 * (rows["pretrained"]["test"] - rows["random init"]["test"])
    over = 100 * (rows["pretrained"]["test"] - base["test"])
    config_flag = "" if pretrain_config == "configs/chinese-encoder.yaml" else f" --config {pretrain_config}"
    sets = "".join(f" {s}" for s in args.finetune_set)
    random_sets = "".join(f" {s}" for s in random_set)
    config_flag += "".join(f" --finetune-set {s}" for s in args.finetune_set)
    if args.random_finetune_set is not None:
        config_flag += "".join(f" --random-finetune-set {s}" for s in random_set)
    where = args.out.resolve()
    out = str(where.relative_to(REPO)) if where.is_relative_to(REPO) else str(where)
    section = "\n".join([
        markers[0],
        f"### Measured ({pretrain_config}): pretrained vs random init vs n-gram baseline (chinese-reviews, 2,000 "
        "test reviews)",
        "",
        *table,
        "",
        f"Pretraining adds **{gain:+.1f} points** of test accuracy over the same architecture randomly initialised, "
        f"and is **{over:+.1f} points** against the n-gram baseline (bar: >= +3 and > 0).",
        "",
        f"Pretraining run ({pretrain_config}): {size}, "
        f"{p['train.steps']:,} steps over {p['train.tokens']:,} tokens "
        f"({p['train.tokens'] / p['corpus.train_tokens']:.2f} passes over the corpus of "
        f"{p['corpus.train_tokens']:,} tokens in {p['corpus.train_sequences']:,} sequences, repeats included), "
        f"**{p['train.seconds'] / 60:.1f} minutes** of training "
        f"({p['wall_seconds'] / 60:.1f} wall, with loading and evaluation), {p['train.tokens_per_second']:.0f} "
        f"tokens/s, precision {p['train.precision']}; {learned}. Load average when this table was written: "
        f"{load[0]:.1f} (the 2 cores are shared; see the notes below).",
        "",
        "Commands:",
        "",
        "```",
        f"tuneforge pretrain {pretrain_config} output_dir=runs/{stem}",
        f"python bench/chinese_encoder.py{config_flag} --pretrained runs/{stem} --out {out} --write-docs",
        "# which runs:",
        f"tuneforge pretrain {pretrain_config} --init-only output_dir={out}/random-init",
        f"tuneforge train {FINETUNE} model=runs/{stem}/model output_dir={out}/finetune-pretrained{sets}",
        f"tuneforge train {FINETUNE} model={out}/random-init/model "
        f"output_dir={out}/finetune-random-init{random_sets}",
        "```",
        markers[1],
    ])
    print(section)
    if args.write_docs:
        write_docs(REPO / "docs/PRETRAINING.md", section, markers)


if __name__ == "__main__":
    main()
