"""The monitor's HTTP service: POST /v1/items, the dashboard page and the JSON behind it.

Authentication is serve's: API keys from ``auth.keys_env`` / ``auth.keys_file``, sent as
``Authorization: Bearer KEY`` or ``X-API-Key: KEY``, compared in constant time, rate-limited per key. The
page ``/`` itself holds no data and needs no key; its script reads the key from the URL fragment
(``/#key=KEY``, which browsers never send to the server or write to access logs) and sends it as
``X-API-Key`` with every data request.
"""

from __future__ import annotations

import json
import threading
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tuneforge.apps.monitor.dashboard import PAGE
from tuneforge.apps.monitor.monitor import Monitor
from tuneforge.apps.monitor.summary import summary
from tuneforge.errors import TuneforgeError
from tuneforge.serve.auth import ApiKey, KeyChecker, presented_key
from tuneforge.serve.limits import ApiError, RateLimiter, error_response


class Watcher:
    """Calls ``monitor.process()`` every ``watch.poll_s`` seconds in a thread; an error is logged, not fatal."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="monitor-watcher", daemon=True)

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                result = self.monitor.process()
                if result["lines"] or result["classified"]:
                    self.monitor.log.info("processed", extra={"fields": result})
            except Exception:  # noqa: BLE001 (a bad cycle must not end the watcher; the next one retries)
                self.monitor.log.exception("monitor cycle failed")
            self.stop_event.wait(self.monitor.cfg.watch.poll_s)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=30)


def create_app(monitor: Monitor, keys: list[ApiKey] | None, watch: bool = True) -> FastAPI:
    """``keys=None`` serves without authentication; ``watch=False`` leaves the folder watcher off (tests)."""
    checker = KeyChecker(keys) if keys is not None else None
    limits = monitor.cfg.rate_limit
    limiter = RateLimiter(limits.requests_per_second, limits.burst)
    failed = RateLimiter(limits.failed_auth_per_second, limits.failed_auth_burst,
                         what="requests without a valid API key from this address")
    watcher = Watcher(monitor) if watch else None

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if watcher is not None:
            watcher.start()
        monitor.log.info("monitor ready", extra={"fields": {"runs": list(monitor.classifiers),
                                                            "auth": keys is not None}})
        try:
            yield
        finally:
            if watcher is not None:
                watcher.stop()

    def authorised(request: Request) -> None:
        if checker is None:
            return
        name = checker.name_of(presented_key({k.lower(): v for k, v in request.headers.items()}))
        if name is None:
            failed.check(request.client.host if request.client else "unknown")
            raise ApiError(401, "unauthorized", "Missing or wrong API key: send Authorization: Bearer KEY or "
                           "X-API-Key: KEY (the dashboard takes it from the page address: /#key=KEY).")
        limiter.check(name)

    app = FastAPI(title="tuneforge monitor", lifespan=lifespan)
    app.state.monitor = monitor

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        return error_response(422, "invalid_request", f"The request is not valid: {problems}.")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, f"http_{exc.status_code}")
        return error_response(exc.status_code, code, str(exc.detail))

    async def json_body(request: Request) -> Any:
        declared = request.headers.get("content-length", "")
        limit = monitor.cfg.max_body_bytes
        if declared.isdigit() and int(declared) > limit:  # refuse before reading it
            raise ApiError(413, "body_too_large", f"The body has {declared} bytes; the limit is {limit}. Send "
                           "fewer items per request.")
        raw = await request.body()
        if len(raw) > limit:
            raise ApiError(413, "body_too_large", f"The body is over {limit} bytes. Send fewer items per request.")
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiError(422, "bad_json", f"The request body is not valid JSON ({exc}). Send "
                           '{"items": [...]} with Content-Type: application/json.') from None

    @app.post("/v1/items", dependencies=[Depends(authorised)])
    def post_items(body: Any = Depends(json_body)) -> dict[str, Any]:
        """Store items ``{"items": [{"id", "time", "text", "source"?, "topic"?}, ...]}`` (or a bare list), then
        classify them and check the rules. A repeated id counts as a duplicate, not a new item."""
        raws = body.get("items") if isinstance(body, dict) else body
        if not isinstance(raws, list) or not raws:
            raise ApiError(422, "invalid_request", 'Send {"items": [{"id": ..., "time": ..., "text": ..., '
                           '"source": ...}, ...]} with at least one item.')
        if len(raws) > monitor.cfg.max_items_per_request:
            raise ApiError(413, "too_many_items", f"{len(raws)} items in one request; the limit is "
                           f"{monitor.cfg.max_items_per_request}. Split them.")
        try:
            stored = monitor.ingest(raws)
        except TuneforgeError as exc:
            raise ApiError(422, "invalid_items", str(exc)) from None
        processed = monitor.process() if stored["new"] else {"classified": 0, "alerts_opened": 0}
        return {**stored, "classified": processed["classified"], "alerts_opened": processed["alerts_opened"]}

    @app.get("/api/summary", dependencies=[Depends(authorised)])
    def get_summary(topic: str | None = Query(None, max_length=100), source: str | None = Query(None, max_length=100),
                    buckets: int = Query(24, ge=1, le=500), limit: int = Query(50, ge=1, le=500)) -> dict[str, Any]:
        """Trend per topic (volume and negative share per bucket), recent alerts, latest items, filters."""
        return summary(monitor, topic=topic or None, source=source or None, buckets=buckets, limit=limit)

    @app.get("/api/alerts", dependencies=[Depends(authorised)])
    def get_alerts(limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
        return {"alerts": [{**a, "opened_at": a["opened_at"].isoformat() + "Z",
                            "closed_at": a["closed_at"].isoformat() + "Z" if a["closed_at"] else None}
                           for a in monitor.alerts(limit)]}

    @app.get("/", response_class=HTMLResponse)
    def page() -> HTMLResponse:
        """The dashboard (no data in it; open it as /#key=KEY)."""
        return HTMLResponse(PAGE)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", **monitor.counts()}

    return app
