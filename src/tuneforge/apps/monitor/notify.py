"""Alert delivery: the log always, and a JSON POST to each webhook with a timeout and retries.

A webhook that is down must not stop the monitor: failures are logged and recorded on the alert
(``delivered = false``), never raised.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx

from tuneforge.apps.monitor.config import WebhookConfig


def post_webhooks(cfg: WebhookConfig, payload: dict[str, Any], log: logging.Logger,
                  sleep=None) -> bool | None:
    """True when every URL answered 2xx, False when one never did, None when no webhook is configured."""
    if not cfg.urls:
        return None
    ok = True
    for url in cfg.urls:
        for attempt in range(cfg.retries + 1):
            try:
                response = httpx.post(url, json=payload, timeout=cfg.timeout_s)
                if response.status_code < 300:
                    break
                problem = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            log.warning("webhook attempt failed", extra={"fields": {"url": url, "attempt": attempt + 1,
                                                                    "problem": problem}})
            if attempt < cfg.retries:
                (sleep or time.sleep)(0.5 * 2 ** attempt)
        else:
            ok = False
            log.error("webhook gave up", extra={"fields": {"url": url, "alert": payload.get("id")}})
    return ok
