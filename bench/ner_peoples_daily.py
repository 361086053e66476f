"""Chinese NER on the built-in ``peoples-daily-ner``: entity F1 of a small character-level BERT.

No Chinese encoder ships offline (docs/RESOURCES), so by default the backbone is a BERT with a character
vocabulary built from the training sentences and *random* weights (a lower bound: nothing pretrained).
``--model PATH`` uses a pretrained Chinese encoder folder instead (e.g. the output of ``tuneforge
pretrain``). Prints one JSON line with the test scores; ``docs/NER.md`` holds the measured numbers.

    PYTHONPATH=src .venv/bin/python bench/ner_peoples_daily.py --train-samples 3000 --epochs 3
    PYTHONPATH=src .venv/bin/python bench/ner_peoples_daily.py --model runs/chinese-encoder/model
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path


def build_char_bert(folder: Path, texts: list[str], *, hidden: int, layers: int, min_count: int = 2) -> Path:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a pretrained Chinese encoder folder (default: a random char BERT)")
    parser.add_argument("--method", default="full")
    parser.add_argument("--train-samples", type=int, default=3000)
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--output-dir", type=Path, default=None)
    args = parser.parse_args()

    import tuneforge
    from tuneforge.data import load_builtin

    work = Path(tempfile.mkdtemp(prefix="ner-bench-"))
    model = args.model
    if model is None:
        train = load_builtin("peoples-daily-ner").train
        model = str(build_char_bert(work / "char-bert", [e.text for e in train], hidden=args.hidden,
                                    layers=args.layers))
    started = time.perf_counter()
    run = tuneforge.train({
        "name": "peoples-daily-ner", "model": model, "task": "token-classification",
        "data": {"dataset": "peoples-daily-ner", "max_train_samples": args.train_samples,
                 "max_length": args.max_length, "max_eval_samples": 300},
        "method": {"name": args.method},
        "train": {"epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
                  "warmup": 0.1},
        "output_dir": str(args.output_dir or work / "run"),
    })
    m = run.metrics
    print(json.dumps({"backbone": args.model or f"random char BERT (hidden {args.hidden}, {args.layers} layers)",
                      "method": args.method, "train_sentences": args.train_samples, "epochs": args.epochs,
                      "seconds": round(time.perf_counter() - started, 1),
                      **{k: round(v, 4) for k, v in m.items() if k.startswith("test.") and isinstance(v, float)},
                      "per_type": m["test.per_type"], "run": str(run.dir)}, ensure_ascii=False))


if __name__ == "__main__":
    main()
