"""The gate every HTTP request passes before the app: request id, API key, rate limit, body size; after the
app, one log line and the request metrics.

It runs before FastAPI reads or parses the body, so an unauthenticated caller cannot make the server parse
large JSON, and learns nothing from how its body would have been judged.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from tuneforge.serve.auth import presented_key
from tuneforge.serve.limits import ApiError, error_response
from tuneforge.serve.logs import texts_field

ENDPOINTS = ("/v1/predict", "/v1/models", "/healthz", "/metrics", "/docs", "/openapi.json", "/redoc")
ENDPOINTS += ("/v1/chat", "/")  # tuneforge assistant serve (apps/assistant/app.py) passes the same gate
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class Gate:
    """ASGI middleware: request id, auth, rate limit and body size before the app; log line and metrics after."""

    def __init__(self, app: Any, server: Any) -> None:
        """``server``: the :class:`~tuneforge.serve.app.Server` (config, auth, limiter, metrics, logger)."""
        self.app = app
        self.server = server

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        server, start = self.server, time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given_id = headers.get("x-request-id", "")
        request_id = given_id if _REQUEST_ID.match(given_id) else uuid.uuid4().hex[:16]
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = [500]
        started = [False]

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0], started[0] = message["status"], True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        key_name = None
        try:
            if server.needs_auth(scope["path"]):
                if server.checker is None:
                    key_name = "anonymous"
                else:
                    key_name = server.checker.name_of(presented_key(headers))
                    if key_name is None:  # guessing keys is throttled per client address
                        server.failed_auth.check(f"ip:{(scope.get('client') or ('?',))[0]}")
                        raise ApiError(401, "unauthorized", "A valid API key is required: send "
                                       "`Authorization: Bearer KEY` or `X-API-Key: KEY`.",
                                       {"WWW-Authenticate": 'Bearer realm="tuneforge"'})
                server.limiter.check(key_name)
            if scope["method"] in ("POST", "PUT", "PATCH"):
                receive = await self._read_body(headers, receive)
            await self.app(scope, receive, send_with_id)
        except ApiError as exc:
            state["error"] = exc.code
            await error_response(exc.status, exc.code, exc.message, exc.headers)(scope, receive, send_with_id)
        except Exception:
            state["error"] = "internal"
            server.log.exception("request failed", extra={"fields": {"request_id": request_id}})
            if not started[0]:
                await error_response(500, "internal", f"The server failed on this request (request id "
                                     f"{request_id}); the error is logged.")(scope, receive, send_with_id)
        finally:
            self._record(scope, state, key_name, status[0], time.perf_counter() - start)

    async def _read_body(self, headers: dict[str, str], receive: Any) -> Any:
        """Read the whole body (refusing it past the limit), then replay it to the app."""
        limit = self.server.config.limits.max_body_bytes
        too_large = ApiError(413, "body_too_large", f"The request body is larger than {limit} bytes "
                             "(limits.max_body_bytes). Send fewer or shorter texts per request.")
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
            more = message.get("more_body", False)
        body, sent = b"".join(chunks), [False]

        async def replay() -> dict:
            if not sent[0]:
                sent[0] = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay

    def _record(self, scope: dict, state: dict, key_name: str | None, status: int, seconds: float) -> None:
        server, path = self.server, scope["path"]
        endpoint = path if path in ENDPOINTS else "other"
        m = server.metrics
        m.requests.labels(endpoint, str(status)).inc()
        m.latency.labels(endpoint).observe(seconds)
        if status >= 400:
            m.errors.labels(endpoint, state.get("error") or f"http_{status}").inc()
        texts = state.get("texts")
        fields: dict[str, Any] = {"request_id": state["request_id"], "key": key_name, "method": scope["method"],
                                  "endpoint": endpoint, "status": status, "latency_ms": round(seconds * 1000, 2)}
        if texts is not None:
            fields.update(adapter=state.get("adapter"), n_texts=len(texts), chars=sum(map(len, texts)),
                          texts=texts_field(texts, server.config.log_texts))
        if state.get("error"):
            fields["error"] = state["error"]
        client = scope.get("client")
        if client:
            fields["client"] = client[0]
        server.log.log(logging.WARNING if status >= 500 else logging.INFO, "request", extra={"fields": fields})
