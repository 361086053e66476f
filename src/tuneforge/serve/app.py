"""The HTTP API: ``create_app(models, config, keys)`` returns a FastAPI app.

Every request passes the :class:`~tuneforge.serve.gate.Gate` first (request id, API key, rate limit, body
size), before FastAPI reads or parses anything. Every refusal has one JSON shape,
``{"error": {"code", "message"}}``, and client mistakes are never a 500.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from tuneforge.errors import closest
from tuneforge.run import format_predictions
from tuneforge.serve.auth import ApiKey, KeyChecker
from tuneforge.serve.batching import MicroBatcher, QueueFull
from tuneforge.serve.config import ServeConfig
from tuneforge.serve.engine import ServedModel
from tuneforge.serve.gate import Gate
from tuneforge.serve.limits import ApiError, RateLimiter, install_error_handlers
from tuneforge.serve.logs import get_logger
from tuneforge.serve.metrics import CONTENT_TYPE_LATEST, Metrics

DOC_PATHS = ("/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc")


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={
        "examples": [{"texts": ["@united lost my bag again", "thanks for the smooth flight"]}]})

    texts: list[str] = Field(min_length=1, description="Texts to classify (at most limits.max_texts, each at most "
                                                       "limits.max_chars characters).")
    text_pairs: list[str] | None = Field(None, description="Second texts for pair tasks, one per text.")
    adapter: str | None = Field(None, description="Which loaded run to use (GET /v1/models lists them); "
                                                  "required when several are loaded.")


class Prediction(BaseModel):
    label: str
    scores: dict[str, float]


class PredictResponse(BaseModel):
    predictions: list[Prediction]
    adapter: str = Field(description="The run that answered.")
    model: str = Field(description="Its backbone.")


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text} for status, text in [
        (401, "Missing or wrong API key"), (413, "Too many texts or too large a body"),
        (422, "Bad JSON, wrong types, too long a text, unknown adapter"), (429, "Rate limited (see Retry-After)")]}


class Server:
    """What the routes and the gate share: config, models, batcher, auth, limits, metrics, logger."""

    def __init__(self, models: dict[str, ServedModel], config: ServeConfig, keys: list[ApiKey] | None) -> None:
        self.config = config
        self.models = models
        self.checker = KeyChecker(keys) if keys is not None else None  # None: --no-auth
        limits = config.rate_limit
        self.limiter = RateLimiter(limits.requests_per_second, limits.burst)
        self.failed_auth = RateLimiter(limits.failed_auth_per_second, limits.failed_auth_burst,
                                       what="requests without a valid API key from this address")
        self.metrics = Metrics()
        self.log = get_logger()
        for name, model in models.items():
            self.metrics.model_load_seconds.labels(name).set(model.load_seconds)
        self.batcher = MicroBatcher(models, config.batching.max_batch_size, config.batching.max_wait_ms,
                                    config.batching.max_queue, on_batch=self._on_batch,
                                    on_queue=self.metrics.queue_depth.inc)
        self.ready = False

    def _on_batch(self, texts: int, requests: int, seconds: float) -> None:
        self.metrics.batch_texts.observe(texts)
        self.metrics.batch_requests.observe(requests)
        self.metrics.forward_seconds.observe(seconds)

    def needs_auth(self, path: str) -> bool:
        return path != "/healthz" and not (self.config.public_docs and path in DOC_PATHS)

    def choose(self, adapter: str | None) -> ServedModel:
        if adapter is None:
            if len(self.models) == 1:
                return next(iter(self.models.values()))
            raise ApiError(422, "adapter_required", f'{len(self.models)} models are loaded; say which with '
                           f'"adapter": one of {", ".join(self.models)}.')
        if adapter not in self.models:
            best = closest(adapter, self.models)  # the names once: not "Valid names: a, b. Loaded: a, b."
            hint = f' Did you mean "{best}"?' if best else ""
            raise ApiError(422, "unknown_adapter", f'No model named "{adapter}" is loaded.{hint} Loaded: '
                           f"{', '.join(self.models)}.")
        return self.models[adapter]

    def check_limits(self, body: PredictRequest) -> None:
        limits = self.config.limits
        if len(body.texts) > limits.max_texts:
            raise ApiError(413, "too_many_texts", f"The request has {len(body.texts)} texts; the limit is "
                           f"{limits.max_texts} per request. Split it into several requests.")
        if body.text_pairs is not None and len(body.text_pairs) != len(body.texts):
            raise ApiError(422, "pairs_mismatch", f"{len(body.texts)} texts but {len(body.text_pairs)} text_pairs; "
                           "give one pair per text, or leave text_pairs out.")
        for field, values in (("texts", body.texts), ("text_pairs", body.text_pairs or [])):
            long = [i for i, t in enumerate(values) if len(t) > limits.max_chars]
            if long:
                shown = ", ".join(f"{field}[{i}] has {len(values[i])}" for i in long[:5])
                raise ApiError(422, "text_too_long", f"{shown} characters; the limit is {limits.max_chars} "
                               "characters per text. Shorten or split those texts.")


def _validation_message(exc: RequestValidationError) -> tuple[str, str]:
    errors = exc.errors()
    if any(e["type"] == "json_invalid" for e in errors):
        e = next(e for e in errors if e["type"] == "json_invalid")
        detail = (e.get("ctx") or {}).get("error", "invalid")
        return "bad_json", (f"The request body is not valid JSON ({detail} at character {e['loc'][-1]}). Send "
                            'a JSON object such as {"texts": ["..."]} with Content-Type: application/json.')
    whole = [e for e in errors if tuple(e["loc"]) == ("body",)]
    if whole:  # not an object: a JSON list or number, or a body FastAPI did not parse (no JSON content type)
        unparsed = whole[0]["type"] == "missing" or isinstance(whole[0].get("input"), (bytes, str))
        code = "bad_json" if unparsed else "invalid_request"
        return code, ('The request body must be a JSON object such as {"texts": ["..."]}, sent with '
                      "Content-Type: application/json.")
    problems = []
    for e in errors[:5]:
        where = ".".join(str(p) for p in e["loc"] if p != "body") or "body"
        problems.append(f"{where}: {e['msg']}")  # never echo the input: it may be a user's text
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "invalid_request", ("The request does not match the schema: " + "; ".join(problems) + more +
                               '. Expected {"texts": [str, ...], "text_pairs"?: [str, ...], "adapter"?: str}.')


def create_app(models: dict[str, ServedModel], config: ServeConfig, keys: list[ApiKey] | None) -> FastAPI:
    """``keys=None`` serves without authentication (``--no-auth``)."""
    server = Server(models, config, keys)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        server.batcher.start()
        server.ready = True
        server.log.info("ready", extra={"fields": {"models": list(models), "auth": keys is not None,
                                                   "engines": {n: m.engine for n, m in models.items()}}})
        try:
            yield
        finally:  # uvicorn lets requests in flight finish first; then the queue drains here
            server.ready = False
            server.batcher.stop(timeout=config.graceful_timeout_s)
            server.log.info("stopped", extra={"fields": {"forward_passes": server.batcher.forward_passes}})

    app = FastAPI(title="tuneforge", version=_version(), lifespan=lifespan,
                  description="Text classification with tuneforge runs. Every endpoint but /healthz needs an API "
                              "key: `Authorization: Bearer KEY` or `X-API-Key: KEY`.")
    app.state.server = server
    app.add_middleware(Gate, server=server)
    secured = [Depends(HTTPBearer(auto_error=False)), Depends(APIKeyHeader(name="X-API-Key", auto_error=False))]

    install_error_handlers(app, _validation_message)

    @app.post("/v1/predict", response_model=PredictResponse, responses=ERRORS, dependencies=secured)
    async def predict(body: PredictRequest, request: Request) -> Response:
        """Classify a batch of texts with one loaded run."""
        request.state.texts = body.texts
        server.check_limits(body)
        model = server.choose(body.adapter)
        request.state.adapter = model.name
        try:
            probs = await server.batcher.predict(model.name, body.texts, body.text_pairs)
        except QueueFull:
            raise ApiError(503, "overloaded", f"The server is busy: {server.config.batching.max_queue} requests "
                           "are waiting for the model. Retry in a second.", {"Retry-After": "1"}) from None
        server.metrics.texts.labels(model.name).inc(len(body.texts))
        return JSONResponse({"predictions": format_predictions(model.labels, probs), "adapter": model.name,
                             "model": model.backbone})

    @app.get("/v1/models", responses=ERRORS, dependencies=secured)
    async def list_models() -> dict[str, Any]:
        """The loaded runs: names (the "adapter" of a request), labels, method, backbone, engine."""
        return {"models": [m.info() for m in models.values()]}

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """200 once the models are loaded and the batcher runs; no API key needed."""
        ok = server.ready
        return JSONResponse({"status": "ok" if ok else "unavailable", "models": list(models)},
                            status_code=200 if ok else 503)

    @app.get("/metrics", responses=ERRORS, dependencies=secured)
    async def metrics() -> Response:
        """Prometheus text format: requests, errors, latency, batch sizes, queue depth, model load time."""
        return Response(server.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app


def _version() -> str:
    from tuneforge import __version__

    return __version__
