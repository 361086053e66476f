"""Chinese NER on the built-in ``peoples-daily-ner``: entity precision / recall / F1 (overall and per type) of
short LoRA and full fine-tuning runs, with the tokenizer's coverage of the characters measured alongside.

No Chinese encoder ships offline (/work/shared/RESOURCES.md), so the default backbone is MiniLM
(all-MiniLM-L6-v2, an English uncased WordPiece vocabulary): many Chinese characters become ``[UNK]``, and the
script measures how many. ``--model char-bert`` instead builds a BERT whose vocabulary is every character of
the training sentences, with *random* weights (full coverage, nothing pretrained); ``--model PATH`` takes a
pretrained Chinese encoder folder (a local Hugging Face folder). ``--write-docs`` replaces the
measured section of docs/NER.md and draws docs/images/ner_peoples_daily.png.

    PYTHONPATH=src .venv/bin/python bench/ner_peoples_daily.py --methods lora,full --write-docs
    PYTHONPATH=src .venv/bin/python bench/ner_peoples_daily.py --model char-bert --methods full
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402

from docs_section import write_docs  # noqa: E402  (bench/ is sys.path[0] when run as a script)
from train_vs_hf import OtherLoad, command_line, machine  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent


def section_markers(name: str | None) -> tuple[str, str]:
    """The docs section's markers: the main one, or ``ner_peoples_daily_NAME`` (a second measurement)."""
    tag = "ner_peoples_daily" + (f"_{name}" if name else "")
    return f"<!-- {tag} -->", f"<!-- /{tag} -->"
LEARNING_RATES = {"full": 1e-4, "lora": 1e-3, "adapter": 1e-3}
TYPES = ("PER", "LOC", "ORG")


def build_char_bert(folder: pathlib.Path, texts: list[str], *, hidden: int = 256, layers: int = 4,
                    min_count: int = 2) -> pathlib.Path:
    """A BERT whose WordPiece vocabulary is every character seen ``min_count`` times (and its ``##`` form,
    for characters BERT's pre-tokenizer keeps in runs: digits, Latin letters), with random weights."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, BertTokenizerFast

    counts = Counter(c for t in texts for c in t if not c.isspace())
    chars = sorted(c for c, n in counts.items() if n >= min_count)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + [f"##{c}" for c in chars]
    wordpiece = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]",
                                           max_input_chars_per_word=1000))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True, handle_chinese_chars=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wordpiece.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    tokenizer = BertTokenizerFast(tokenizer_object=wordpiece, unk_token="[UNK]", pad_token="[PAD]",
                                  cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=max(1, hidden // 64), intermediate_size=4 * hidden,
                        max_position_embeddings=512)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def coverage(model: str, examples, max_length: int) -> dict:
    """How the backbone's tokenizer sees the test sentences: the share of characters (and of entity
    characters) whose first subword is [UNK], and the share of characters cut off by ``max_length``."""
    from tuneforge.models.backbones import load_tokenizer, resolve_model
    from tuneforge.tasks.token_classification.encoding import encode_tokens

    tokenizer = load_tokenizer(resolve_model(model))
    labels = ["O"] + [f"{p}-{t}" for t in TYPES for p in "BI"]
    enc = encode_tokens(examples, tokenizer, labels, max_length)
    chars = unk = entity = entity_unk = cut = 0
    for example, ids, words in zip(examples, enc.input_ids, enc.word_subwords):
        for tag, k in zip(example.tags, words):
            chars += 1
            if k is None:
                cut += 1
                continue
            is_unk = ids[k if k >= 0 else -k - 1] == tokenizer.unk_token_id
            unk += is_unk
            if tag != "O":
                entity += 1
                entity_unk += is_unk
    return {"unk_chars": unk / chars, "unk_entity_chars": entity_unk / max(entity, 1), "truncated_chars": cut / chars}


def train_one(spec: str, model: str, args, out: pathlib.Path) -> dict:
    """``spec`` is a method name, optionally with its learning rate: ``lora`` or ``lora@5e-3``."""
    import tuneforge

    method, _, rate = spec.partition("@")
    learning_rate = float(rate) if rate else args.learning_rate or LEARNING_RATES[method]

    with OtherLoad() as load:
        started = time.perf_counter()
        run = tuneforge.train({
            "name": f"ner-{method}", "model": model, "task": "token-classification",
            "data": {"dataset": "peoples-daily-ner", "max_train_samples": args.train_samples,
                     "max_length": args.max_length, "max_eval_samples": args.eval_samples},
            "method": {"name": method},
            "train": {"epochs": args.epochs, "batch_size": args.batch_size,
                      "learning_rate": learning_rate, "warmup": 0.1,
                      "num_threads": args.num_threads, "seed": args.seed},
            "output_dir": str(out / spec.replace("@", "-lr")),
        })
        seconds = time.perf_counter() - started
    m = run.metrics
    return {"method": method, "seconds": round(seconds, 1), "other_load_cores": round(load.cores, 2),
            "learning_rate": run.config.train.learning_rate, "trainable_percent": round(m["trainable_percent"], 3),
            "train_seconds": round(m["train.seconds"], 1),
            "train_samples_per_second": round(m["train.samples_per_second"], 2),
            "precision_mode": m["train.precision"],
            **{k: round(m[f"test.{k}"], 4) for k in ("precision", "recall", "f1", "macro_f1", "accuracy")},
            "per_type": m["test.per_type"], "run": str(run.dir)}


def plot(results: list[dict], path: pathlib.Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    groups = [*TYPES, "all (micro)"]
    width = 0.8 / max(len(results), 1)
    for i, r in enumerate(results):
        values = [r["per_type"].get(t, {}).get("f1", 0.0) for t in TYPES] + [r["f1"]]
        bars = ax.bar([g + i * width for g in range(len(groups))], values, width,
                      label=f"{r['method']} (lr {r['learning_rate']:g})")
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=8)
    ax.set_xticks([g + width * (len(results) - 1) / 2 for g in range(len(groups))], groups)
    ax.set_ylim(0, 1)
    ax.set_ylabel("entity F1 (test)")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def markdown_section(results: list[dict], cov: dict, args, backbone: str, info: dict, image: str,
                     markers: tuple[str, str]) -> str:
    rows = []
    for r in results:
        per = " | ".join(f"{100 * r['per_type'][t]['precision']:.1f} / {100 * r['per_type'][t]['recall']:.1f} / "
                         f"**{100 * r['per_type'][t]['f1']:.1f}**" if t in r["per_type"] else "-" for t in TYPES)
        rows.append(f"| {r['method']} | {r['learning_rate']:g} | {r['trainable_percent']:.2f} | "
                    f"{100 * r['precision']:.1f} / {100 * r['recall']:.1f} / **{100 * r['f1']:.1f}** | "
                    f"{100 * r['macro_f1']:.1f} | {per} | {r['train_seconds']:.0f} | {r['seconds']:.0f} | "
                    f"{r['other_load_cores']:.2f} |")
    support = " ".join(f"{t} {results[0]['per_type'][t]['support']:,}" for t in TYPES if t in results[0]["per_type"])
    busy = max(r["other_load_cores"] for r in results)
    return f"""{markers[0]}
### Measured: {backbone}

- Command: `{command_line()}`
- Date: {datetime.date.today().isoformat()}
- Machine: {info['cpu']}, {info['cores']} cores shared with other engineers' jobs (other processes kept up to \
{busy:.1f} cores busy during the runs, see the last column), no GPU; `train.num_threads={args.num_threads}`, \
precision {results[0]['precision_mode']}; torch {info['torch']}, transformers {info['transformers']}, \
peft {info['peft']}.

{args.train_samples:,} training sentences (seeded sample of the fixed train split), {args.epochs:g} epochs, \
batch {args.batch_size}, `max_length` {args.max_length}, validation on {args.eval_samples} sentences after each \
epoch; scores on the whole fixed test split (2,000 sentences; gold entities: {support}). Entity-level \
precision / recall / F1 in % (seqeval: type and both boundaries must match).

Tokenizer coverage on the test split: {100 * cov['unk_chars']:.1f}% of the characters (and \
{100 * cov['unk_entity_chars']:.1f}% of the characters inside entities) are `[UNK]` to this backbone; \
{100 * cov['truncated_chars']:.2f}% of the characters lie beyond `max_length` and are predicted `O`.

| method | learning rate | trainable % | all: P / R / **F1** | macro-F1 | PER: P / R / **F1** | LOC: P / R / **F1** \
| ORG: P / R / **F1** | train s | total s | other load (cores) |
|---|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

![entity F1 per type]({image})

{markers[1]}
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="minilm", help="minilm (default), char-bert (random weights, a "
                                                          "character vocabulary), or a Chinese encoder folder")
    parser.add_argument("--methods", default="lora,full", help="comma-separated: full, lora, adapter, ...; "
                                                               "name@rate sets that run's learning rate")
    parser.add_argument("--train-samples", type=int, default=2000)
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--learning-rate", type=float, default=None,
                        help=f"one rate for every method (default per method: {LEARNING_RATES})")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--eval-samples", type=int, default=300)
    parser.add_argument("--num-threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output-dir", type=pathlib.Path, default=None, help="where the runs go (default: temp)")
    parser.add_argument("--write-docs", action="store_true", help="replace the measured section of --docs-file")
    parser.add_argument("--docs-file", type=pathlib.Path, default=REPO / "docs" / "NER.md")
    parser.add_argument("--docs-section", default=None, help="write a section of this name (and its own picture) "
                                                             "instead of the main one")
    args = parser.parse_args(argv)

    import torch

    from tuneforge.data import load_builtin

    torch.set_num_threads(args.num_threads)
    work = args.output_dir or pathlib.Path(tempfile.mkdtemp(prefix="ner-bench-"))
    splits = load_builtin("peoples-daily-ner")
    model, backbone = args.model, f"`{args.model}`"
    if args.model == "minilm":
        backbone = "MiniLM (all-MiniLM-L6-v2, English uncased WordPiece vocabulary, pretrained)"
    elif args.model == "char-bert":
        model = str(build_char_bert(work / "char-bert", [e.text for e in splits.train]))
        backbone = "a character-vocabulary BERT with random weights (4 layers, hidden 256; nothing pretrained)"
    cov = coverage(model, splits.test, args.max_length)
    print(json.dumps({"backbone": args.model, **{k: round(v, 4) for k, v in cov.items()}}), file=sys.stderr)
    results = []
    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
        results.append(train_one(method, model, args, work))
        print(json.dumps({"backbone": args.model, **results[-1]}, ensure_ascii=False), flush=True)
    if args.write_docs:
        suffix = f"_{args.docs_section}" if args.docs_section else ""
        markers = section_markers(args.docs_section)
        image = args.docs_file.parent / "images" / f"ner_peoples_daily{suffix}.png"
        plot(results, image, f"peoples-daily-ner test, {backbone.split(' (')[0]}, {args.train_samples:,} "
                             f"sentences, {args.epochs:g} epochs")
        write_docs(args.docs_file, markdown_section(results, cov, args, backbone, machine(),
                                                    image.relative_to(args.docs_file.parent).as_posix(), markers),
                   markers)
        print(f"wrote {args.docs_file} and {image}", file=sys.stderr)


if __name__ == "__main__":
    main()
