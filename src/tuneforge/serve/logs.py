"""Structured logs: one JSON object per line, request texts masked unless ``log_texts`` is on.

A masked text is ``{"chars": N, "sha256": first 12 hex digits}``: enough to match a complaint ("my request
at 10:02 with a 140-character text") to a log line, not enough to read the text.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from typing import Any

LOGGER = "tuneforge.serve"


def mask(text: str) -> dict[str, Any]:
    return {"chars": len(text), "sha256": hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]}


def texts_field(texts: list[str], log_texts: bool) -> list[Any]:
    return list(texts) if log_texts else [mask(t) for t in texts]


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", ...extra fields given as ``extra={"fields": {...}}``}``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        line.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def log_config(level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` mapping: ours and uvicorn's loggers as JSON lines on stderr (uvicorn's
    access log is off; our request lines replace it)."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stderr": handler},
        "loggers": {name: {"handlers": ["stderr"], "level": level, "propagate": False}
                    for name in (LOGGER, "uvicorn", "uvicorn.error")},
    }


def get_logger() -> logging.Logger:
    logger = logging.getLogger(LOGGER)
    if not logger.handlers and not logging.getLogger().handlers:  # library use without a config: still JSON
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    return logger
