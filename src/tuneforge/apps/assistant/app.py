"""The chat service: ``POST /v1/chat``, ``GET /healthz``, ``GET /metrics``, and the chat page at ``/``.

Security is tuneforge serve's, reused, not copied: every request passes serve's
:class:`~tuneforge.serve.gate.Gate` (request id, API key checked in constant time, per-key rate limit, failed
logins throttled per address, body size refused before parsing, one JSON log line with the question masked
unless ``log_texts``) and the Prometheus :class:`~tuneforge.serve.metrics.Metrics`. The page and /healthz
need no key; the page holds no data.
"""

from __future__ import annotations

import threading
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from fastapi.security import APIKeyHeader, HTTPBearer
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field

from tuneforge.apps.assistant.assistant import Assistant
from tuneforge.apps.assistant.config import ChatServeConfig
from tuneforge.apps.assistant.page import PAGE
from tuneforge.serve.auth import ApiKey, KeyChecker
from tuneforge.serve.gate import Gate
from tuneforge.serve.limits import ApiError, RateLimiter, install_error_handlers
from tuneforge.serve.logs import get_logger
from tuneforge.serve.metrics import CONTENT_TYPE_LATEST, Metrics

OPEN_PATHS = ("/", "/healthz")
DOC_PATHS = ("/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc")


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True,
                              json_schema_extra={"examples": [{"question": "How do I reset my password?"}]})

    question: str = Field(min_length=1, description="The customer's question (at most limits.max_chars characters).")


class ChatServer:
    """What the routes and serve's Gate share: config, auth, limiters, metrics, logger (the Gate's contract)."""

    def __init__(self, assistant: Assistant, config: ChatServeConfig, keys: list[ApiKey] | None) -> None:
        self.assistant, self.config = assistant, config
        self.checker = KeyChecker(keys) if keys is not None else None  # None: --no-auth
        limits = config.rate_limit
        self.limiter = RateLimiter(limits.requests_per_second, limits.burst)
        self.failed_auth = RateLimiter(limits.failed_auth_per_second, limits.failed_auth_burst,
                                       what="requests without a valid API key from this address")
        self.metrics = Metrics()
        self.routes = Counter("tuneforge_assistant_replies", "Chat replies by route (kb, generated, human).",
                              ["route"], registry=self.metrics.registry)
        self.log = get_logger()
        self.lock = threading.Lock()  # one question at a time through the encoder and the runs

    def needs_auth(self, path: str) -> bool:
        return path not in OPEN_PATHS and not (self.config.public_docs and path in DOC_PATHS)


def _validation_message(exc: RequestValidationError) -> tuple[str, str]:
    errors = exc.errors()
    code = "bad_json" if any(e["type"] == "json_invalid" for e in errors) else "invalid_request"
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}"
                         for e in errors[:5])  # never echo the input: it is a customer's text
    return code, (f'The request is not valid ({problems}). Send {{"question": "..."}} with Content-Type: '
                  "application/json.")


def create_app(assistant: Assistant, config: ChatServeConfig, keys: list[ApiKey] | None) -> FastAPI:
    """``keys=None`` serves without authentication (``--no-auth``)."""
    server = ChatServer(assistant, config, keys)
    app = FastAPI(title="tuneforge assistant", description="Customer-service answers from a knowledge base. "
                  "Every endpoint but / and /healthz needs `Authorization: Bearer KEY` or `X-API-Key: KEY`.")
    app.state.server = server
    app.add_middleware(Gate, server=server)
    secured = [Depends(HTTPBearer(auto_error=False)), Depends(APIKeyHeader(name="X-API-Key", auto_error=False))]

    install_error_handlers(app, _validation_message)

    @app.post("/v1/chat", dependencies=secured)
    def chat(body: ChatRequest, request: Request) -> dict[str, Any]:
        """Answer one question: from the knowledge base, generated, or handed to a person (``route``, ``reason``)."""
        request.state.texts = [body.question]  # the Gate logs it masked (length and hash) unless log_texts
        limit = config.limits.max_chars
        if len(body.question) > limit:
            raise ApiError(422, "text_too_long", f"The question has {len(body.question)} characters; the limit is "
                           f"{limit} (limits.max_chars). Shorten it.")
        if not body.question.strip():
            raise ApiError(422, "invalid_request", "The question is empty.")
        with server.lock:
            reply = assistant.ask(body.question)
        server.routes.labels(reply["route"]).inc()
        server.metrics.texts.labels("assistant").inc()
        return reply

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(PAGE)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "entries": len(assistant.entries), "modes": assistant.retriever.modes}

    @app.get("/metrics", dependencies=secured)
    def metrics() -> Response:
        return Response(server.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app
