"""The serve recipe's config: ``tuneforge serve RUN_DIR --config serve.yaml key=value``.

Every limit the server enforces lives here with its default, so ``tuneforge config show serve`` lists what
a deployment can tune and nothing is hidden in ``cfg.get`` calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from tuneforge.config.base import StrictModel


class AuthConfig(StrictModel):
    keys_env: str = Field("TUNEFORGE_API_KEYS", min_length=1,
                          description="Environment variable holding the API keys, comma-separated; each key may be "
                                      "written name:key (the name shows in logs and metrics, never the key).")
    keys_file: Path | None = Field(None, description="File with one key per line (name:key allowed; # comments). "
                                                     "Used together with keys_env when both are set.")
    min_key_length: int = Field(16, ge=1, description="Refuse keys shorter than this (short keys can be guessed).")


class RateLimitConfig(StrictModel):
    requests_per_second: float = Field(50.0, gt=0, description="Sustained requests per second per API key "
                                                               "(token bucket refill rate).")
    burst: int = Field(100, ge=1, description="Requests a key may send at once before the rate applies "
                                              "(token bucket size).")
    failed_auth_per_second: float = Field(1.0, gt=0, description="Requests without a valid key, per client "
                                                                 "address: past this they get 429, not 401.")
    failed_auth_burst: int = Field(20, ge=1, description="Requests without a valid key a client address may send "
                                                         "at once.")


class LimitsConfig(StrictModel):
    max_texts: int = Field(64, ge=1, description="Texts per request; more get 413.")
    max_chars: int = Field(2000, ge=1, description="Characters per text; longer texts get 422.")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Request body size; larger bodies get 413.")


class BatchingConfig(StrictModel):
    max_batch_size: int = Field(64, ge=1, description="Texts per forward pass when concurrent requests are merged.")
    max_wait_ms: float = Field(5.0, ge=0, description="How long the first request of a batch waits for others "
                                                      "to join it: the latency batching may add.")
    max_queue: int = Field(1024, ge=1, description="Requests that may wait for a forward pass; past this the "
                                                   "server answers 503 (busy, retry) instead of queueing more.")


class ServeConfig(StrictModel):
    """Serve runs over HTTP: ``tuneforge serve RUN_DIR [RUN_DIR ...] --config serve.yaml``."""

    runs: list[str] = Field(default_factory=list, description="Run folders (or ONNX export folders) to serve, "
                                                              "each PATH or NAME=PATH; the command line's RUN_DIRs "
                                                              "replace this list.")
    host: str = Field("127.0.0.1", min_length=1, description="Address to listen on (0.0.0.0: every interface).")
    port: int = Field(8000, ge=0, le=65535, description="TCP port.")
    engine: Literal["auto", "torch", "onnx"] = Field(
        "auto", description="auto: ONNX export folders run on onnxruntime, run folders on PyTorch; torch or onnx "
                            "insist on one.")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="PyTorch engine: auto uses bf16 autocast where the CPU has bf16 units (AMX, "
                            "AVX-512 BF16), fp32 elsewhere.")
    num_threads: int | None = Field(
        None, ge=1, description="CPU threads for inference, torch runs and ONNX exports alike (default: every core "
                                "this process may use).")
    auth: AuthConfig = Field(default_factory=AuthConfig, description="API keys.")
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig, description="Per-key rate limit.")
    limits: LimitsConfig = Field(default_factory=LimitsConfig, description="Request size limits.")
    batching: BatchingConfig = Field(default_factory=BatchingConfig, description="Micro-batching of concurrent "
                                                                                 "requests.")
    log_texts: bool = Field(False, description="Write request texts into the logs; by default each text is "
                                               "logged as its length and a sha256 prefix.")
    public_docs: bool = Field(False, description="Serve /docs and /openapi.json without an API key (for a browser).")
    graceful_timeout_s: float = Field(30.0, gt=0, description="On SIGTERM/Ctrl-C, how long requests in flight "
                                                              "may take to finish before the server stops anyway.")

