"""``tuneforge assistant build CONFIG``: read the knowledge base, hold out evaluation queries, (fine-tune the
encoder,) index, and write a self-describing folder:

    FOLDER/
        config.yaml          the resolved config
        kb.jsonl             the indexed entries (id, question, answer, category)
        heldout.jsonl        real held-out queries: one question of each answer with 2+ questions
        synthetic.jsonl      synthetic queries: EDA deletes/swaps of indexed questions (a separate evaluation)
        bm25/                the BM25 index (bm25s: .npy arrays and JSON) and the tokeniser settings
        dense/               vectors.safetensors (N, H) and index.faiss
        encoder/             the fine-tuned encoder (Hugging Face folder, safetensors), with finetune.enabled
        finetune_log.jsonl   one line per fine-tuning step
        index.json           what was built: sizes, encoder, modes, timings; written last (a finished folder)
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from rich.console import Console

from tuneforge.apps.assistant.config import AssistantConfig
from tuneforge.apps.assistant.kb import Entry, groups, hold_out, load_kb
from tuneforge.apps.assistant.text import synthetic_paraphrase
from tuneforge.config import dump_config, load_config
from tuneforge.errors import TuneforgeError
from tuneforge.recipes.runfolder import environment, new_run_dir, write_json

console = Console(stderr=True)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def synthetic_queries(entries: list[Entry], count: int, alpha: float, seed: int) -> list[dict]:
    """Up to ``count`` edited copies of indexed questions (3+ words or characters, so an edit leaves something)."""
    rng = random.Random(seed + 1)
    candidates = [e for e in entries if len(e.question.split()) >= 3 or len(e.question) >= 3 and " " not in
                  e.question]
    out = []
    for e in rng.sample(candidates, min(count, len(candidates))):
        for _ in range(5):  # a swap of equal words or a lucky delete can leave the text unchanged
            text, operation = synthetic_paraphrase(e.question, rng, alpha)
            if text.strip() and text != e.question:
                out.append({"question": text, "answer": e.answer, "source_id": e.id, "operation": operation})
                break
    return out


def load_cfg(config, overrides: list[str] | None) -> AssistantConfig:
    if isinstance(config, AssistantConfig):
        return load_config(AssistantConfig, data=config.model_dump(mode="json"), overrides=overrides)
    if isinstance(config, dict):
        return load_config(AssistantConfig, data=config, overrides=overrides)
    return load_config(AssistantConfig, path=config, overrides=overrides)


def build(config: str | Path | dict | AssistantConfig, overrides: list[str] | None = None, progress: bool = True):
    """Build the folder; returns the loaded :class:`~tuneforge.apps.assistant.assistant.Assistant`."""
    import torch
    from rich.progress import Progress

    from tuneforge.apps.assistant.assistant import Assistant
    from tuneforge.apps.assistant.bm25 import BM25Index
    from tuneforge.apps.assistant.dense import DenseIndex, build_faiss, load_encoder, resolve_encoder
    from tuneforge.apps.assistant.finetune import finetune
    from tuneforge.models.precision import resolve_precision

    cfg = load_cfg(config, overrides)
    entries = load_kb(cfg.kb)  # every knowledge base problem surfaces before a model loads
    indexed, heldout = hold_out(entries, cfg.eval.seed) if cfg.eval.holdout else (entries, [])
    r = cfg.retrieval
    encoder_path = resolve_encoder(r.encoder) if r.dense else None
    folder = new_run_dir(cfg.name, cfg.output_dir)
    if (folder / "index.json").exists():
        raise TuneforgeError(f"{folder} holds a built assistant already; choose another output_dir.")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(dump_config(cfg), encoding="utf-8")
    write_jsonl(folder / "kb.jsonl", [e.to_json() for e in indexed])
    write_jsonl(folder / "heldout.jsonl", [{"question": e.question, "answer": e.answer, "id": e.id}
                                           for e in heldout])
    write_jsonl(folder / "synthetic.jsonl", synthetic_queries(indexed, cfg.eval.synthetic, cfg.eval.synthetic_alpha,
                                                              cfg.eval.seed))
    texts = [e.question if r.fields == "question" else f"{e.question} {e.answer}" for e in indexed]
    info: dict = {"entries": len(indexed), "answers": len(groups(indexed)), "heldout_queries": len(heldout),
                  "bm25": r.bm25, "dense": r.dense, "encoder": encoder_path, "fine_tuned": False,
                  "environment": environment()}
    started = time.perf_counter()
    if r.bm25:
        (folder / "bm25").mkdir(exist_ok=True)
        BM25Index.build(texts, r.k1, r.b, r.cjk).save(folder / "bm25")
        info["bm25_seconds"] = round(time.perf_counter() - started, 3)
    if r.dense:
        precision = resolve_precision(r.precision)
        encoder = load_encoder(encoder_path)
        if cfg.finetune.enabled:
            try:
                info["finetune"] = finetune(encoder, indexed, cfg.finetune, r.max_length, precision,
                                            folder / "finetune_log.jsonl", progress)
            except ValueError:
                raise TuneforgeError(f"finetune.enabled: the knowledge base ({len(indexed)} indexed entries) gives "
                                     "fewer than two positive pairs; add entries or turn fine-tuning off.") from None
            encoder.save(folder / "encoder")
            info.update(fine_tuned=True, encoder=str((folder / "encoder").resolve()), base_encoder=encoder_path)
        started = time.perf_counter()
        with Progress(console=console, disable=not progress, transient=True) as bar:
            task = bar.add_task("embedding the knowledge base", total=len(texts))
            with torch.inference_mode():
                vectors = encoder.encode(texts, r.max_length, precision, r.batch_size,
                                         lambda n: bar.advance(task, n)).numpy()
        DenseIndex(encoder, vectors, build_faiss(vectors, r.index, r.hnsw_m), r.max_length, precision
                   ).save(folder / "dense")
        info["embed_seconds"] = round(time.perf_counter() - started, 3)
        info["texts_per_second"] = round(len(texts) / max(info["embed_seconds"], 1e-9), 1)
    write_json(folder / "index.json", info)  # last: its presence marks a finished folder
    return Assistant.load(folder)
