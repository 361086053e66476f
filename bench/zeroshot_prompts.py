"""Zero-shot prompts compared on airline-sentiment: templates, chat turn, contextual calibration.

    PYTHONPATH=src HF_HUB_OFFLINE=1 python bench/zeroshot_prompts.py --limit 300

Loads the model once, scores a stratified sample of the test split with each prompt, and reports accuracy
and macro-F1 without and with calibration (the same scores: calibration only divides the probabilities
by those of the content-free inputs), and texts/s.
"""

from __future__ import annotations

import argparse
import time

import torch

from tuneforge.data import load_builtin, subsample_stratified
from tuneforge.evaluation.metrics import classification_metrics
from tuneforge.models.precision import resolve_precision
from tuneforge.prompting.config import PromptConfig
from tuneforge.prompting.scoring import PromptScorer, load_language_model

WORDS = {"negative": "negative", "neutral": "neutral", "positive": "positive"}
PROMPTS = {
    "question": {"template": "Tweet: {text}\nIs this tweet negative, neutral or positive?\nAnswer: {answer}",
                 "verbalizer": WORDS},
    "cloze": {"template": "{text}\nAll in all, the customer's experience was {answer}",
              "verbalizer": {"negative": ["bad", "terrible"], "neutral": ["okay", "fine"],
                             "positive": ["good", "great"]}},
    "chat": {"template": "Is this tweet negative, neutral or positive? Answer with one word.\n"
                         "Tweet: {text}\n{answer}",
             "verbalizer": {label: [word, word.capitalize()] for label, word in WORDS.items()}, "chat": True},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--prompts", default=",".join(PROMPTS))
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--multi-token", choices=["mean", "first", "sum"], default=None,
                        help="Override every prompt's multi_token (default: mean).")
    args = parser.parse_args()
    lm = load_language_model(args.model)
    test = subsample_stratified(load_builtin("airline-sentiment").test, args.limit, seed=42)
    labels = list(WORDS)
    y_true = [labels.index(e.label) for e in test]
    precision = resolve_precision(args.precision)
    print(f"model {args.model}, {len(test)} test texts, precision {precision}, {torch.get_num_threads()} threads")
    print("| prompt | calibrated | accuracy | macro-F1 | texts/s |\n|---|---|---|---|---|")
    for name in args.prompts.split(","):
        options = {**PROMPTS[name], **({"multi_token": args.multi_token} if args.multi_token else {})}
        scorer = PromptScorer(lm, PromptConfig(**options), precision=precision)
        started = time.perf_counter()
        scores = scorer.log_scores(test)
        rate = len(test) / (time.perf_counter() - started)
        content_free = torch.from_numpy(scorer.calibrate())
        for calibrated, s in (("no", scores), ("yes", scores - content_free.log())):
            m = classification_metrics(y_true, s.argmax(-1).tolist(), labels)
            print(f"| {name} | {calibrated} | {m['accuracy']:.3f} | {m['macro_f1']:.3f} | {rate:.1f} |", flush=True)
        print(f"  content-free probabilities: {dict(zip(labels, content_free.numpy().round(3).tolist()))}",
              flush=True)


if __name__ == "__main__":
    main()
