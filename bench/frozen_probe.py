"""Frozen-encoder probe: mean-pooled last hidden states + logistic regression on chinese-reviews (C chosen on
the validation split), for each encoder folder given; what an encoder knows before fine-tuning.

    python bench/frozen_probe.py runs/chinese-encoder/model runs/bench-chinese/random-init/model
    python bench/frozen_probe.py --pooling cls,mean FOLDER ...   # also the first token's state ([CLS]: what the
                                                                 # classification head of tuneforge train reads)
"""

from __future__ import annotations

import os
import pathlib
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402


def features(model, tokenizer, texts: list[str], batch_size: int = 128, pooling: str = "mean") -> torch.Tensor:
    out = []
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start:start + batch_size], truncation=True, max_length=128, padding=True,
                              return_tensors="pt")
            hidden = model(**batch).last_hidden_state.float()  # (B, T, H)
            mask = batch["attention_mask"][..., None].float()  # (B, T, 1)
            out.append(hidden[:, 0] if pooling == "cls" else (hidden * mask).sum(1) / mask.sum(1))
    return torch.cat(out)


def main() -> None:
    from sklearn.linear_model import LogisticRegression
    from transformers import AutoModel, AutoTokenizer

    from tuneforge.data import load_builtin

    args = sys.argv[1:]
    poolings = ["mean"]
    if args and args[0] == "--pooling":
        poolings, args = args[1].split(","), args[2:]
    torch.set_num_threads(1)
    splits = load_builtin("chinese-reviews")
    names = ("train", "validation", "test")
    labels = {n: [e.label for e in getattr(splits, n)] for n in names}
    for folder, pooling in [(f, p) for f in args for p in poolings]:
        started = time.perf_counter()
        tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
        x = {n: features(model, tokenizer, [e.text for e in getattr(splits, n)], pooling=pooling).numpy()
             for n in names}
        fits = [(LogisticRegression(C=c, max_iter=3000).fit(x["train"], labels["train"]), c) for c in (0.1, 1.0, 10.0)]
        best, c = max(fits, key=lambda fc: fc[0].score(x["validation"], labels["validation"]))
        print(f"{folder} ({pooling} pooling): C={c} validation {best.score(x['validation'], labels['validation']):.4f} "
              f"test {best.score(x['test'], labels['test']):.4f} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
