"""Retrieval quality of `tuneforge assistant` on the chatterbot corpus (English and Chinese): recall@1, recall@5
and MRR of BM25 only, dense only (MiniLM) and hybrid (RRF), before and after contrastive fine-tuning of the
encoder, on the real held-out paraphrases and, apart, on the synthetic (EDA) queries; the table goes to
docs/ASSISTANT.md with --write-docs.

    PYTHONPATH=src .venv/bin/python bench/assistant_retrieval.py --out runs/bench-assistant [--write-docs]

Each folder is `tuneforge assistant build configs/assistant-chatterbot.yaml kb.language=L finetune.enabled=F
output_dir=OUT/L-F` followed by `tuneforge assistant eval OUT/L-F`; folders already built under --out are reused.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from docs_section import write_docs  # noqa: E402

MARKERS = ("<!-- bench:assistant-retrieval:start -->", "<!-- bench:assistant-retrieval:end -->")
CONFIG = REPO / "configs" / "assistant-chatterbot.yaml"


def run(out: pathlib.Path, language: str, finetune: bool) -> dict:
    from tuneforge.apps.assistant import build_assistant, load_assistant

    folder = out / f"{language}-{'finetuned' if finetune else 'base'}"
    started = time.perf_counter()
    if (folder / "index.json").exists():
        assistant = load_assistant(folder, load_runs=False)
    else:
        assistant = build_assistant(CONFIG, [f"kb.language={language}", f"finetune.enabled={str(finetune).lower()}",
                                             f"output_dir={folder}"], progress=sys.stderr.isatty())
    metrics = assistant.evaluate()
    metrics["info"] = {k: v for k, v in assistant.info.items() if k != "environment"}
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    (folder / "eval.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return metrics


def table(results: dict[tuple[str, bool], dict]) -> str:
    lines = ["| language | queries | retrieval | encoder | recall@1 | recall@5 | MRR |",
             "|---|---|---|---|---:|---:|---:|"]
    for language in ("english", "chinese"):
        for part in ("heldout", "synthetic"):
            for mode in ("bm25", "dense", "hybrid"):
                for finetune in (False, True):
                    m = results.get((language, finetune))
                    if m is None or (mode == "bm25" and finetune):  # BM25 does not use the encoder
                        continue
                    r = m[part][mode]
                    encoder = "-" if mode == "bm25" else ("MiniLM fine-tuned" if finetune else "MiniLM")
                    what = f"{'held-out real' if part == 'heldout' else 'synthetic EDA'} ({m[part]['queries']})"
                    lines.append(f"| {language} | {what} | {mode} | {encoder} | {r['recall@1']:.3f} | "
                                 f"{r['recall@5']:.3f} | {r['mrr']:.3f} |")
    return "\n".join(lines) + "\n"


def routing(folder: pathlib.Path, thresholds=(0.5, 0.6, 0.7, 0.8), limit: int = 200) -> str:
    """Share of questions the knowledge base answers at each min_score: in-domain (the synthetic queries, whose
    right answer is known) against out-of-domain (airline customer tweets, which the chatterbot KB cannot
    answer); a good threshold answers the first and hands over the second."""
    from tuneforge.apps.assistant import load_assistant
    from tuneforge.apps.assistant.assistant import read_jsonl
    from tuneforge.data import load_builtin

    bot = load_assistant(folder, load_runs=False)
    inside = read_jsonl(folder / "synthetic.jsonl")[:limit]
    outside = [e.text for e in load_builtin("airline-sentiment").test[:limit]]
    top_in = [bot.retriever.search(q["question"], k=1) for q in inside]
    right = [bool(h) and bot.entries[h[0].index].group == " ".join(q["answer"].split()) for h, q in zip(top_in, inside)]
    sim_in = [h[0].similarity if h else 0.0 for h in top_in]
    sim_out = [(bot.retriever.search(t, k=1) or [None])[0] for t in outside]
    sim_out = [h.similarity if h else 0.0 for h in sim_out]
    lines = [f"| min_score | in-domain answered from the KB ({len(inside)}) | ... and right | out-of-domain answered "
             f"from the KB ({len(outside)} airline tweets) |", "|---:|---:|---:|---:|"]
    for t in thresholds:
        answered = [s >= t for s in sim_in]
        ok = sum(a and r for a, r in zip(answered, right))
        lines.append(f"| {t} | {sum(answered) / len(inside):.3f} | {ok / max(1, sum(answered)):.3f} | "
                     f"{sum(s >= t for s in sim_out) / len(outside):.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("runs/bench-assistant"))
    parser.add_argument("--languages", default="english,chinese")
    parser.add_argument("--finetune", default="false,true", help="which of false,true to run")
    parser.add_argument("--routing", action="store_true", help="also the routing table on OUT/english-base")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    results = {}
    for language in args.languages.split(","):
        for finetune in [f == "true" for f in args.finetune.split(",")]:
            results[(language, finetune)] = m = run(args.out, language, finetune)
            print(f"{language} finetune={finetune}: {m['seconds']} s, {json.dumps(m['info'].get('finetune', {}))}",
                  file=sys.stderr)
    text = table(results)
    if args.routing:
        text += "\nRouting on " + str(args.out / "english-base") + ":\n\n" + routing(args.out / "english-base")
    print(text)
    if args.write_docs:
        command = "PYTHONPATH=src .venv/bin/python bench/assistant_retrieval.py " + " ".join(sys.argv[1:])
        how = ("Each folder is `tuneforge assistant build configs/assistant-chatterbot.yaml kb.language=L "
               "finetune.enabled=F output_dir=OUT/L-F`, then `tuneforge assistant eval`; MiniLM (all-MiniLM-L6-v2), "
               "RRF fusion, seed 0.")
        write_docs(REPO / "docs" / "ASSISTANT.md",
                   f"{MARKERS[0]}\n{text}\nMeasured with `{command}`. {how}\n{MARKERS[1]}\n", MARKERS)


if __name__ == "__main__":
    main()
