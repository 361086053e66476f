"""Supervised fine-tuning for reply generation: the training recipe's body for ``task: generation``.

    load the causal LM  ->  score the base model on the test pairs (perplexity, ROUGE-L of greedy answers)
    ->  apply the method  ->  fit (the shared loop; the loss is the model's own cross-entropy over answer
    tokens, see chat.py)  ->  score again  ->  metrics.json (test.*, base.test.*), samples.jsonl, model/
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.markup import escape

from tuneforge.errors import TuneforgeError
from tuneforge.evaluation.plots import plot_loss
from tuneforge.methods.params import count_parameters
from tuneforge.models.backbones import Backbone
from tuneforge.models.precision import Precision
from tuneforge.recipes.runfolder import write_json
from tuneforge.tasks.generation.chat import ChatFormat, encode_pairs, encode_prompts
from tuneforge.tasks.generation.config import GenerationConfig
from tuneforge.tasks.generation.data import sample
from tuneforge.tasks.generation.generate import Sampling, decode, generate_ids
from tuneforge.tasks.generation.metrics import answer_nll, perplexity, rouge_l
from tuneforge.tasks.generation.records import Pair
from tuneforge.training.loop import fit

console = Console(stderr=True)
# Checked end to end on a decoder (tests/tasks/test_generation_train.py); the others are untested here.
SUPPORTED_METHODS = ("full", "lora", "prefix", "prompt")


def load_causal_lm(path: str) -> Backbone:
    """The causal LM of ``path`` in fp32 with its tokenizer; no new parameters (the LM head is pretrained)."""
    import transformers
    from transformers.utils import logging as hf_logging

    from tuneforge.models.backbones import load_tokenizer

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise TuneforgeError(f"Could not load the causal language model {path}: {exc}. task: generation needs a "
                             "decoder (Llama, GPT-2, Qwen, ...), e.g. model: smollm2.") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    tokenizer = load_tokenizer(path)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model.config.use_cache = False  # training needs no key/value cache; generate() asks for one itself
    return Backbone(model=model, tokenizer=tokenizer, path=path, new_parameters=set())


def check_config(cfg) -> None:
    """Options generation cannot use, refused before the run folder is made; train.metric becomes loss."""
    problems = []
    if cfg.method.name not in SUPPORTED_METHODS:
        problems.append(f"method {cfg.method.name} has not been checked with generation; use one of: "
                        f"{', '.join(SUPPORTED_METHODS)}")
    data = cfg.data
    for field, instead in (("text_column", "prompt_column"), ("label_column", "response_column")):
        if field in data.model_fields_set:
            problems.append(f"data.{field}: generation reads prompt/response pairs; set data.{instead} instead")
    if data.text_pair_column is not None:
        problems.append("data.text_pair_column: generation reads prompt/response pairs; remove it")
    for field in ("prompt", "contrastive", "augment"):
        if getattr(cfg, field) is not None:
            problems.append(f"{field}: is for text classification; remove the {field}: section")
    loop = cfg.train
    if loop.label_smoothing or loop.rdrop_alpha:
        problems.append("train.label_smoothing / train.rdrop_alpha are written for one label per text; set them to 0")
    if loop.adversarial.method != "none":
        problems.append("train.adversarial: not available for generation yet; set it to none")
    if loop.metric != "loss":
        if "metric" in loop.model_fields_set:
            problems.append(f"train.metric = {loop.metric}: generation picks the best evaluation by validation "
                            "loss (answer tokens); set train.metric: loss or remove it")
        else:
            loop.metric = "loss"  # the default (macro_f1) is a classification metric; saved as loss in config.yaml
    if problems:
        raise TuneforgeError("The config does not fit task: generation:", problems)


def score(model, tokenizer, chat: ChatFormat, pairs: list[Pair], gen: GenerationConfig, *, max_length: int,
          precision: Precision, device: torch.device, seed: int, batch_size: int = 16
          ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Perplexity over every pair's answer, and ROUGE-L of greedy answers to a seeded sample of
    ``gen.eval_generations`` pairs; returns the metrics and the generated samples."""
    started = time.perf_counter()
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    nll, tokens = answer_nll(model, encode_pairs(pairs, chat, max_length), batch_size=batch_size,
                             precision=precision, device=device, pad_id=pad_id)
    metrics: dict[str, Any] = {"perplexity": perplexity(nll, tokens), "loss": nll / max(tokens, 1), "pairs": len(pairs),
                               "answer_tokens": tokens}
    samples: list[dict[str, Any]] = []
    chosen = sample(pairs, gen.eval_generations, seed) if gen.eval_generations else []
    if chosen:
        gen_started = time.perf_counter()
        ids = generate_ids(model, encode_prompts([p.prompt for p in chosen], chat, max_length),
                           Sampling(max_new_tokens=gen.max_new_tokens), stop_ids=chat.stop_ids, pad_id=pad_id,
                           batch_size=gen.batch_size, precision=precision, device=device)
        texts = decode(tokenizer, ids)
        scores = [rouge_l(t, p.response or "")["f1"] for t, p in zip(texts, chosen)]
        metrics |= {"rouge_l": sum(scores) / len(scores), "generations": len(chosen),
                    "generated_tokens_mean": sum(map(len, ids)) / len(ids),
                    "generation_seconds": time.perf_counter() - gen_started}
        samples = [{"prompt": p.prompt, "reference": p.response, "generated": t, "rouge_l": round(s, 4), **p.meta}
                   for p, t, s in zip(chosen, texts, scores)]
    metrics["seconds"] = time.perf_counter() - started
    return metrics, samples


def train_body(cfg, run_dir: Path, splits, device, precision, resume: bool, progress: bool, stop_after, tracker):
    from tuneforge.recipes.train import _read_log, apply_method, fit_metrics, save_model
    from tuneforge.run import Run

    loop = cfg.train
    gen = cfg.generation or GenerationConfig()
    backbone = load_causal_lm_for(cfg.model)
    tokenizer = backbone.tokenizer
    chat = ChatFormat(tokenizer, gen.system_prompt)
    write_json(run_dir / "chat.json", chat.describe())
    if not chat.uses_template:
        console.print(f"note: {escape(chat.describe()['note'])} (chat.json)")
    max_len = cfg.data.max_length
    kwargs = dict(max_length=max_len, precision=precision, device=device, seed=loop.seed,
                  batch_size=max(16, loop.batch_size))
    base_metrics, base_samples = {}, []
    if gen.evaluate_base:
        console.print(f"scoring the base model on {len(splits.test):,} test pairs ({gen.eval_generations} generations)")
        base_metrics, base_samples = score(backbone.model, tokenizer, chat, splits.test, gen, **kwargs)
    method, model = apply_method(backbone, cfg, len(splits.train), precision)
    n_trainable, n_total = count_parameters(model)
    console.print(f"[bold]{escape(cfg.name)}[/]: generation, {cfg.method.name} on {escape(backbone.path)} - trainable "
                  f"parameters {n_trainable:,} of {n_total:,} ({100 * n_trainable / n_total:.3f}%), precision "
                  f"{precision}, {len(splits.train):,} training pairs, {chat.describe()['format']} format")

    enc = {name: encode_pairs(getattr(splits, name), chat, max_len) for name in ("train", "validation")}
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    val = enc["validation"]
    if cfg.data.max_eval_samples and cfg.data.max_eval_samples < len(splits.validation):
        val = encode_pairs(sample(splits.validation, cfg.data.max_eval_samples, loop.seed), chat, max_len)

    def evaluate() -> dict[str, float]:
        nll, tokens = answer_nll(model, val, batch_size=kwargs["batch_size"], precision=precision, device=device,
                                 pad_id=pad_id)
        return {"loss": nll / max(tokens, 1), "perplexity": perplexity(nll, tokens)}

    result = fit(model, enc["train"], loop, run_dir=run_dir, precision=precision, device=device, pad_id=pad_id,
                 padding_side="right", evaluate=evaluate, resume=resume, progress=progress, stop_after=stop_after,
                 method=method, on_log=tracker.log)
    state = result.state
    test, samples = score(model, tokenizer, chat, splits.test, gen, **kwargs)
    metrics = fit_metrics(state, loop, precision, device, n_trainable, n_total, test)
    metrics |= {f"base.test.{k}": v for k, v in base_metrics.items()}
    write_json(run_dir / "metrics.json", metrics)
    write_samples(run_dir / "samples.jsonl", samples, base_samples)
    log_records = [r for r in _read_log(run_dir / "log.jsonl") if r.get("type") == "train"]
    plot_loss(log_records, state.evals, run_dir / "loss.png", loop.metric)

    save_model(run_dir, backbone, method, model, tokenizer, [])
    tracker.finish(run_dir, metrics)
    before = (f" (base model: {base_metrics['perplexity']:.2f}" + (f", ROUGE-L {base_metrics['rouge_l']:.4f}"
                                                                   if "rouge_l" in base_metrics else "") + ")"
              ) if base_metrics else ""
    console.print(f"test perplexity [bold]{test['perplexity']:.2f}[/]"
                  + (f", ROUGE-L [bold]{test['rouge_l']:.4f}[/] on {test['generations']} generations"
                     if "rouge_l" in test else "") + f"{before}; run folder: {escape(str(run_dir))}")
    return Run.load(run_dir)


def load_causal_lm_for(model: str) -> Backbone:
    from tuneforge.models.backbones import load_backbone

    return load_backbone(model, [], "generation")


def write_samples(path: Path, samples: list[dict], base: list[dict]) -> None:
    """samples.jsonl: per scored pair the prompt, the reference, the fine-tuned and the base model's answers."""
    base_by_prompt = {(s["prompt"], s["reference"]): s for s in base}
    lines = []
    for s in samples:
        b = base_by_prompt.get((s["prompt"], s["reference"]))
        extra = {"base_generated": b["generated"], "base_rouge_l": b["rouge_l"]} if b else {}
        lines.append(json.dumps({**s, **extra}, ensure_ascii=False))
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
