"""The sentiment and topic monitor: ``tuneforge monitor`` (docs/MONITOR.md).

Items (id, time, text, source) arrive over HTTP or from a watched folder of JSONL files, are stored once
(idempotent by id), classified with trained runs, counted per topic and source in rolling windows, and
checked against alert rules; a dashboard shows trends, alerts and the latest items.

    from tuneforge.apps.monitor import open_monitor
    monitor = open_monitor("configs/monitor-airline.yaml", ["runs.sentiment=runs/airline-lora-..."])
    monitor.ingest([{"id": "1", "time": "2015-02-24T11:35:52Z", "text": "@united lost my bag", "source": "x"}])
    monitor.process(); monitor.alerts()
"""

from __future__ import annotations

from typing import Any

__all__ = ["Monitor", "MonitorConfig", "open_monitor"]


def __getattr__(name: str) -> Any:  # lazy: `tuneforge --help` must not import SQLAlchemy and numpy
    if name == "MonitorConfig":
        from tuneforge.apps.monitor.config import MonitorConfig

        return MonitorConfig
    if name in ("Monitor", "open_monitor"):
        from tuneforge.apps.monitor import monitor

        return getattr(monitor, name)
    raise AttributeError(name)
