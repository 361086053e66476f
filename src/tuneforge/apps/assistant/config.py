"""The assistant's config: ``tuneforge assistant build configs/assistant-chatterbot.yaml key=value``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from tuneforge.config.base import StrictModel
from tuneforge.serve.config import AuthConfig, RateLimitConfig


class KnowledgeBaseConfig(StrictModel):
    """Where the question/answer pairs come from: a file of yours, or the built-in chatterbot corpus."""

    path: Path | None = Field(None, description="A knowledge base file: .yaml/.yml (a list of {question or "
                                                "questions, answer, category?, id?}), .jsonl (one such object a "
                                                "line) or .csv (columns question, answer, category?, id?).")
    builtin: Literal["chatterbot"] | None = Field(None, description="chatterbot: the conversations of the installed "
                                                                    "chatterbot corpus, category = file name.")
    language: Literal["english", "chinese"] = Field("english", description="builtin: which language's files.")

    @model_validator(mode="after")
    def _one_source(self) -> KnowledgeBaseConfig:
        if (self.path is None) == (self.builtin is None):
            raise ValueError("give the knowledge base as kb.path=FILE (YAML, JSONL or CSV) or kb.builtin=chatterbot; "
                             "exactly one of them")
        return self


class RetrievalConfig(StrictModel):
    """Hybrid retrieval: BM25 over our own tokens plus dense vectors from a sentence encoder, fused."""

    bm25: bool = Field(True, description="Lexical retrieval (BM25, bm25s library, our tokeniser).")
    dense: bool = Field(True, description="Dense retrieval: cosine of mean-pooled encoder vectors (FAISS).")
    encoder: str = Field("minilm", description="Sentence encoder: an alias (minilm), a local Hugging Face encoder "
                                               "folder, or a tuneforge run folder whose model/ is a full model "
                                               "(export a LoRA run with `tuneforge export RUN OUT --merge` first).")
    fields: Literal["question", "question_answer"] = Field(
        "question", description="What an entry is indexed by: its question, or its question and answer together.")
    cjk: Literal["chars", "bigrams", "both"] = Field(
        "both", description="BM25 tokens of Chinese/Japanese text: characters, character bigrams, or both. Latin "
                            "text is always lower-cased words.")
    k1: float = Field(1.2, ge=0, description="BM25 term-frequency saturation.")
    b: float = Field(0.75, ge=0, le=1, description="BM25 length normalisation.")
    fusion: Literal["rrf", "mix"] = Field(
        "rrf", description="rrf: reciprocal rank fusion, sum of 1/(rrf_k + rank); mix: dense_weight x min-max "
                           "normalised cosine + (1 - dense_weight) x min-max normalised BM25.")
    rrf_k: float = Field(60.0, gt=0, description="RRF's rank offset (Cormack et al. 2009 use 60).")
    dense_weight: float = Field(0.5, ge=0, le=1, description="mix: weight of the dense score.")
    candidates: int = Field(50, ge=1, description="Hits taken from each retriever before fusion.")
    index: Literal["flat", "hnsw"] = Field("flat", description="FAISS index: flat (exact inner product) or hnsw "
                                                              "(approximate, for large knowledge bases).")
    hnsw_m: int = Field(32, ge=4, description="hnsw: neighbours per node.")
    max_length: int = Field(64, ge=8, description="Encoder tokens per text.")
    batch_size: int = Field(64, ge=1, description="Texts per encoder forward pass.")
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="auto: bf16 autocast where the CPU runs "
                                                                           "it fast, else fp32.")

    @model_validator(mode="after")
    def _something(self) -> RetrievalConfig:
        if not (self.bm25 or self.dense):
            raise ValueError("retrieval.bm25 and retrieval.dense are both off; keep at least one")
        return self


class FinetuneConfig(StrictModel):
    """Contrastive fine-tuning of the encoder on the knowledge base's own paraphrases (docs/ASSISTANT.md)."""

    enabled: bool = Field(False, description="Fine-tune the encoder at build time (only on indexed questions, "
                                             "never on held-out queries).")
    with_answers: bool = Field(True, description="Also use (question, its answer) as positive pairs, not only "
                                                 "(question, another question with the same answer).")
    epochs: float = Field(1.0, gt=0, description="Passes over the positive pairs.")
    batch_size: int = Field(32, ge=2, description="Pairs per step; the other pairs of the batch are negatives.")
    learning_rate: float = Field(2e-5, gt=0, description="AdamW learning rate (linear decay).")
    temperature: float = Field(0.05, gt=0, description="Softmax temperature on cosine similarities.")
    max_pairs_per_group: int = Field(20, ge=1, description="Question pairs taken from one answer's questions.")
    seed: int = Field(0, description="Seeds batching and dropout.")


class RoutingConfig(StrictModel):
    """When to answer from the knowledge base, when with a generated reply, when to hand over to a person."""

    min_score: float = Field(0.6, ge=0, le=1, description="Answer from the knowledge base only if the matched "
                                                          "question's score reaches this: cosine to the query "
                                                          "with dense retrieval, else the share of the query's "
                                                          "tokens found in the matched question.")
    intent_run: str | None = Field(None, description="A tuneforge text-classification run folder (e.g. trained on "
                                                     "the knowledge base's categories) that classifies each question.")
    min_intent_confidence: float = Field(0.5, ge=0, le=1, description="Below this intent probability the assistant "
                                                                      "does not trust the knowledge base answer.")
    human_intents: list[str] = Field(default_factory=list, description="Intents always handed over to a person "
                                                                       "(e.g. complaint).")
    generation_run: str | None = Field(None, description="A tuneforge generation run: low-confidence questions get "
                                                         "a generated reply instead of a handover.")
    prompt: str = Field("Answer the customer's question briefly and politely.\nQuestion: {question}\nAnswer:",
                        min_length=1, description="The generation prompt; {question} is replaced by the question.")
    max_new_tokens: int = Field(64, ge=1, description="Generation: new tokens at most.")
    temperature: float = Field(0.7, gt=0, description="Generation: sampling temperature.")
    top_p: float = Field(0.9, gt=0, le=1, description="Generation: nucleus sampling.")
    do_sample: bool = Field(False, description="Generation: sample (true) or greedy (false).")
    seed: int = Field(0, description="Generation: sampling seed.")
    handover_message: str = Field("I am passing your question to a member of our team, who will answer you shortly.",
                                  min_length=1, description="The answer when a person takes over.")

    @model_validator(mode="after")
    def _prompt(self) -> RoutingConfig:
        if "{question}" not in self.prompt:
            raise ValueError("routing.prompt must contain {question}, where the customer's question goes")
        return self


class EvalConfig(StrictModel):
    """Held-out evaluation: real paraphrases from the knowledge base, and clearly separate synthetic ones."""

    holdout: bool = Field(True, description="For each answer with 2+ questions, keep one question (seeded) out of "
                                            "the index as an evaluation query. Turn off to index everything.")
    synthetic: int = Field(200, ge=0, description="Synthetic queries: EDA deletes/swaps (words; characters for "
                                                  "Chinese) applied to this many indexed questions.")
    synthetic_alpha: float = Field(0.2, gt=0, lt=1, description="Share of words (characters) edited per query.")
    seed: int = Field(0, description="Seeds the held-out choice and the synthetic edits.")


class ChatLimitsConfig(StrictModel):
    max_chars: int = Field(1000, ge=1, description="Characters per question; longer ones get 422.")
    max_body_bytes: int = Field(65_536, ge=1024, description="Request body size; larger bodies get 413.")


class ChatServeConfig(StrictModel):
    """``tuneforge assistant serve FOLDER``: the same API keys, rate limits and log masking as tuneforge serve."""

    host: str = Field("127.0.0.1", min_length=1, description="Address to listen on.")
    port: int = Field(8020, ge=0, le=65535, description="TCP port.")
    auth: AuthConfig = Field(default_factory=AuthConfig, description="API keys, as for tuneforge serve.")
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig, description="Per-key rate limit.")
    limits: ChatLimitsConfig = Field(default_factory=ChatLimitsConfig, description="Request size limits.")
    log_texts: bool = Field(False, description="Write questions into the logs; by default each is logged as its "
                                               "length and a sha256 prefix.")
    public_docs: bool = Field(False, description="Serve /docs and /openapi.json without an API key.")
    threads: int | None = Field(None, ge=1, description="torch threads (default: torch's own choice).")


class AssistantConfig(StrictModel):
    """``tuneforge assistant build CONFIG``: index a knowledge base for a customer-service assistant."""

    name: str = Field("assistant", min_length=1, description="The folder is runs/<name>-<time> unless output_dir.")
    kb: KnowledgeBaseConfig = Field(description="The question/answer pairs.")
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig, description="BM25, dense, fusion.")
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig, description="Contrastive encoder fine-tuning.")
    routing: RoutingConfig = Field(default_factory=RoutingConfig, description="Thresholds, intent and generation "
                                                                              "runs.")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="Held-out and synthetic evaluation queries.")
    serve: ChatServeConfig = Field(default_factory=ChatServeConfig, description="The chat service.")
    output_dir: Path | None = Field(None, description="The folder to write (default runs/<name>-<time>).")

    @model_validator(mode="after")
    def _finetune_needs_dense(self) -> AssistantConfig:
        if self.finetune.enabled and not self.retrieval.dense:
            raise ValueError("finetune.enabled trains the dense encoder, but retrieval.dense is off; turn one of "
                             "them around")
        return self
