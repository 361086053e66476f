"""Per-key rate limits (token buckets) and the error every refused request carries.

A token bucket holds up to ``burst`` tokens and gains ``rate`` tokens per second; each request takes one.
A key may therefore send ``burst`` requests at once, then ``rate`` per second; when the bucket is empty the
answer is 429 with ``Retry-After`` = seconds until the next token.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse


class ApiError(Exception):
    """A refused request: HTTP status, a stable machine-readable code and a message for the caller."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The one shape of every refusal: ``{"error": {"code": ..., "message": ...}}``."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI, validation_message: Callable[[RequestValidationError], tuple[str, str]]
                           ) -> None:
    """Answer every refusal with :func:`error_response` and record its code in ``request.state.error`` (the
    gate's metrics and access log read it): :class:`ApiError` (auth, limits), a body that fails validation (422,
    code and message from ``validation_message``, which must never echo the request's texts) and Starlette's own
    404 / 405. Shared by ``tuneforge serve`` and the assistant's chat server."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        request.state.error = exc.code
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        code, message = validation_message(exc)
        request.state.error = code
        return error_response(422, code, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        status, code = exc.status_code, {404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, f"http_{exc.status_code}")
        message = str(exc.detail)
        if status == 400 and message == "There was an error parsing the body":
            # FastAPI's 400 for a body it cannot decode (bytes that are not UTF-8): the documented bad_json
            status, code, message = 422, "bad_json", ("The request body could not be read as JSON text (is it "
                                                      "UTF-8?). Send UTF-8 encoded JSON with Content-Type: "
                                                      "application/json.")
        request.state.error = code
        return error_response(status, code, message, getattr(exc, "headers", None))


class TokenBucket:
    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens = float(burst)
        self.updated = clock()

    def take(self) -> float:
        """0.0 if a token was taken, else the seconds to wait for one."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class RateLimiter:
    """One bucket per name (an API key's name, or a client address for failed logins), created on first use.

    Buckets that have refilled completely hold no information and are dropped once there are more than
    ``max_buckets``, so clients from many addresses cannot grow the table without bound.
    """

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic,
                 what: str = "this API key", max_buckets: int = 10_000) -> None:
        self.rate, self.burst, self.clock, self.what, self.max_buckets = rate, burst, clock, what, max_buckets
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def check(self, name: str) -> None:
        with self._lock:
            bucket = self._buckets.get(name)
            if bucket is None:
                if len(self._buckets) >= self.max_buckets:
                    self._drop_full()
                bucket = self._buckets[name] = TokenBucket(self.rate, self.burst, self.clock)
            wait = bucket.take()
        if wait > 0:
            retry = max(1, math.ceil(wait))
            raise ApiError(429, "rate_limited", f"Too many requests for {self.what}: the limit is {self.rate:g} "
                           f"requests/s with bursts of {self.burst}. Retry in {retry} s.", {"Retry-After": str(retry)})

    def _drop_full(self) -> None:
        now = self.clock()
        full = [n for n, b in self._buckets.items() if b.tokens + (now - b.updated) * b.rate >= b.burst]
        for name in full:
            del self._buckets[name]
