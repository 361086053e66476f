"""A built assistant folder, loaded: ``ask(question)`` and ``evaluate()``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tuneforge.apps.assistant.config import AssistantConfig
from tuneforge.apps.assistant.kb import Entry
from tuneforge.apps.assistant.metrics import first_rank, retrieval_metrics
from tuneforge.apps.assistant.retriever import Mode, Retriever
from tuneforge.apps.assistant.routing import Classifier, Generator, intent_of, route
from tuneforge.config import load_config
from tuneforge.errors import TuneforgeError


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class Assistant:
    def __init__(self, folder: Path, cfg: AssistantConfig, entries: list[Entry], retriever: Retriever,
                 classifier: Classifier | None = None, generator: Generator | None = None) -> None:
        self.dir, self.cfg, self.entries, self.retriever = folder, cfg, entries, retriever
        self.classifier, self.generator = classifier, generator

    @classmethod
    def load(cls, folder: str | Path, *, classifier: Classifier | None = None, generator: Generator | None = None,
             load_runs: bool = True) -> Assistant:
        """``classifier`` / ``generator`` replace the config's intent and generation runs; ``load_runs=False``
        leaves the runs out (retrieval only, e.g. for ``evaluate``)."""
        from tuneforge.apps.assistant.bm25 import BM25Index
        from tuneforge.apps.assistant.dense import DenseIndex, load_encoder
        from tuneforge.models.precision import resolve_precision

        folder = Path(folder)
        if not (folder / "index.json").exists():
            raise TuneforgeError(f"{folder} is not a built assistant (no index.json); build one with `tuneforge "
                                 "assistant build CONFIG` (an interrupted build leaves no index.json: build again).")
        cfg = load_config(AssistantConfig, path=folder / "config.yaml")
        info = json.loads((folder / "index.json").read_text(encoding="utf-8"))
        entries = [Entry(**row) for row in read_jsonl(folder / "kb.jsonl")]
        r = cfg.retrieval
        bm25 = BM25Index.load(folder / "bm25") if info["bm25"] else None
        dense = None
        if info["dense"]:
            encoder = load_encoder(str(folder / "encoder") if info["fine_tuned"] else info["encoder"])
            dense = DenseIndex.load(folder / "dense", encoder, r.max_length, resolve_precision(r.precision))
        if load_runs:
            from tuneforge.run import load

            if classifier is None and cfg.routing.intent_run:
                classifier = load(cfg.routing.intent_run)
            if generator is None and cfg.routing.generation_run:
                generator = load(cfg.routing.generation_run)
                if not hasattr(generator, "generate"):
                    raise TuneforgeError(f"routing.generation_run: {cfg.routing.generation_run} is not a generation "
                                         "run (it has no generate()); train one with task: generation, or leave "
                                         "routing.generation_run unset to hand low-confidence questions to a person.")
        return cls(folder, cfg, entries, Retriever(entries, bm25, dense, r), classifier, generator)

    @property
    def info(self) -> dict[str, Any]:
        return json.loads((self.dir / "index.json").read_text(encoding="utf-8"))

    def search(self, question: str, k: int = 5, mode: Mode | None = None) -> list[dict[str, Any]]:
        hits = self.retriever.search(question, k, mode)
        return [{**self.entries[h.index].to_json(), "score": round(h.score, 6), "similarity": round(h.similarity, 4),
                 "bm25": h.bm25, "dense": h.dense} for h in hits]

    def ask(self, question: str) -> dict[str, Any]:
        """``{"answer", "route": kb|generated|human, "reason", "matched_question", "score", "intent", ...}``."""
        if not question.strip():
            raise TuneforgeError("The question is empty.")
        hits = self.retriever.search(question, k=4)
        score_kind = "cosine" if self.retriever.dense is not None else "token coverage"
        return route(question, hits, self.entries, self.cfg.routing, intent_of(self.classifier, question),
                     self.generator, score_kind)

    def evaluate(self, modes: list[Mode] | None = None, depth: int = 10) -> dict[str, Any]:
        """recall@1, recall@5 and MRR (over the top ``depth`` answers) of each retrieval mode, on the real
        held-out queries and, apart, on the synthetic ones."""
        modes = modes or self.retriever.modes
        out: dict[str, Any] = {"folder": str(self.dir), "fine_tuned": self.info["fine_tuned"],
                               "entries": len(self.entries)}
        for name, note in (("heldout", "real paraphrases: one held-out question per answer with 2+ questions"),
                           ("synthetic", "EDA deletes/swaps of indexed questions (noisy copies, not paraphrases)")):
            queries = read_jsonl(self.dir / f"{name}.jsonl")
            vectors = (self.retriever.dense.embed([q["question"] for q in queries])
                       if self.retriever.dense is not None and queries else None)
            result: dict[str, Any] = {"queries": len(queries), "what": note}
            for mode in modes:
                ranks = []
                for i, q in enumerate(queries):
                    vector = vectors[i] if vectors is not None and mode != "bm25" else None
                    hits = self.retriever.search(q["question"], depth, mode, query_vector=vector)
                    gold = " ".join(q["answer"].split())
                    ranks.append(first_rank([self.entries[h.index].group for h in hits], gold))
                result[mode] = retrieval_metrics(ranks)
                result[mode].pop("queries")
            out[name] = result
        return out


def load_assistant(folder: str | Path, **kwargs: Any) -> Assistant:
    return Assistant.load(folder, **kwargs)
