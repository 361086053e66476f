"""The monitor: ingest -> classify -> count -> alert, over one database.

``open_monitor(config)`` loads the runs and connects; ``monitor.ingest(items)`` (HTTP) and
``monitor.scan_folder()`` (watched JSONL files) store items; ``monitor.process()`` classifies what is pending
and checks the rules at the stream's current time (the newest classified item), so replays and tests see
the same windows as a live stream.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from tuneforge.apps.monitor import store
from tuneforge.apps.monitor.config import MonitorConfig
from tuneforge.apps.monitor.items import check_item, check_items
from tuneforge.apps.monitor.notify import post_webhooks
from tuneforge.apps.monitor.rules import check, transitions
from tuneforge.errors import TuneforgeError, did_you_mean
from tuneforge.serve.logs import get_logger


class Classifier(Protocol):
    """What a run offers (``tuneforge.load(run)``, an ONNX export, or a stub in tests)."""

    labels: list[str]

    def predict_proba(self, texts: list[str], batch_size: int = 64) -> np.ndarray: ...


class Monitor:
    def __init__(self, cfg: MonitorConfig, classifiers: dict[str, Classifier], engine: Engine,
                 log: logging.Logger | None = None) -> None:
        problems = []
        if cfg.sentiment.run not in classifiers:
            problems.append(f'sentiment.run "{cfg.sentiment.run}" is not one of runs:'
                            f"{did_you_mean(cfg.sentiment.run, classifiers)}")
        elif cfg.sentiment.negative_label not in classifiers[cfg.sentiment.run].labels:
            problems.append(f'sentiment.negative_label "{cfg.sentiment.negative_label}" is not a label of run '
                            f'"{cfg.sentiment.run}" (labels: {", ".join(classifiers[cfg.sentiment.run].labels)})')
        if cfg.topic.run is not None and cfg.topic.run not in classifiers:
            problems.append(f'topic.run "{cfg.topic.run}" is not one of runs:{did_you_mean(cfg.topic.run, classifiers)}'
                            "")
        if problems:
            raise TuneforgeError("The monitor config does not match its runs:", problems)
        self.cfg = cfg
        self.classifiers = classifiers
        self.engine = engine
        self.log = log or get_logger()
        self.pattern = re.compile(cfg.topic.pattern, re.IGNORECASE) if cfg.topic.pattern else None
        self.lock = threading.RLock()  # one ingest/process at a time: the HTTP routes and the folder watcher

    # ---- ingestion -------------------------------------------------------------------------------------
    def ingest(self, raws: list[Any]) -> dict[str, int]:
        """Store items (all or none); a repeated id is a duplicate, not a second item."""
        rows = check_items(raws)
        with self.lock, self.engine.begin() as conn:
            new = store.insert_items(conn, rows)
        return {"received": len(rows), "new": new, "duplicates": len(rows) - new}

    def scan_folder(self) -> dict[str, int]:
        """Read what is new in each watched file: complete lines only, from the offset stored in the database."""
        folder = self.cfg.watch.folder
        totals = {"lines": 0, "new": 0, "duplicates": 0, "rejected": 0}
        if folder is None or not Path(folder).is_dir():
            return totals
        for path in sorted(Path(folder).glob(self.cfg.watch.glob)):
            if path.is_file():
                for key, value in self._scan_file(path).items():
                    totals[key] += value
        return totals

    def _scan_file(self, path: Path) -> dict[str, int]:
        key = str(path.resolve())
        totals = {"lines": 0, "new": 0, "duplicates": 0, "rejected": 0}
        with self.lock:
            with self.engine.connect() as conn:
                offset, line_no = store.file_offset(conn, key)
            if path.stat().st_size < offset:  # the file was replaced by a shorter one: it is a new file
                self.log.warning("watched file shrank; reading it from the start",
                                 extra={"fields": {"file": key, "offset": offset}})
                offset, line_no = 0, 0
            with path.open("rb") as file:
                file.seek(offset)
                while True:
                    batch, consumed = [], 0
                    for raw in iter(file.readline, b""):
                        if not raw.endswith(b"\n"):  # a line still being written: wait for its newline
                            break
                        batch.append(raw)
                        consumed += len(raw)
                        if len(batch) >= self.cfg.watch.batch_lines:
                            break
                    if not batch:
                        break
                    rows = []
                    for i, raw in enumerate(batch, line_no + 1):
                        if not raw.strip():
                            continue
                        try:
                            rows.append(check_item(json.loads(raw)))
                        except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
                            totals["rejected"] += 1
                            self.log.warning("item rejected", extra={"fields": {"file": key, "line": i,
                                                                                "problem": str(exc)[:300]}})
                    with self.engine.begin() as conn:  # the items and the new offset commit together
                        new = store.insert_items(conn, rows)
                        store.set_file_offset(conn, key, offset + consumed, line_no + len(batch))
                    offset, line_no = offset + consumed, line_no + len(batch)
                    file.seek(offset)  # drop a partial line read ahead
                    totals["lines"] += len(batch)
                    totals["new"] += new
                    totals["duplicates"] += len(rows) - new
        return totals

    # ---- classification --------------------------------------------------------------------------------
    def topic_of(self, text: str, own: str | None, predicted: str | None) -> str:
        if self.cfg.topic.from_item and own:
            return own
        if predicted is not None:
            return predicted
        if self.pattern is not None and (m := self.pattern.search(text)):
            return (m.group(1) if m.groups() else m.group(0)).lower()
        return self.cfg.topic.default

    def classify_pending(self) -> int:
        done = 0
        with self.lock:
            while True:
                with self.engine.connect() as conn:
                    batch = store.pending(conn, self.cfg.batch_size)
                if not batch:
                    return done
                texts = [row["text"] for row in batch]
                outputs = {}
                for name, clf in self.classifiers.items():
                    probs = np.asarray(clf.predict_proba(texts, batch_size=self.cfg.batch_size))
                    outputs[name] = [{"label": clf.labels[int(p.argmax())],
                                      "scores": {lab: round(float(v), 6) for lab, v in zip(clf.labels, p)}}
                                     for p in probs]
                sentiment = self.cfg.sentiment
                results = []
                for i, row in enumerate(batch):
                    runs = {name: out[i] for name, out in outputs.items()}
                    topic_label = runs[self.cfg.topic.run]["label"] if self.cfg.topic.run else None
                    results.append({"id": row["id"], "runs": runs,
                                    "topic": self.topic_of(row["text"], row["topic"], topic_label),
                                    "sentiment": runs[sentiment.run]["label"],
                                    "negative_score": runs[sentiment.run]["scores"][sentiment.negative_label]})
                with self.engine.begin() as conn:
                    store.store_predictions(conn, results)
                done += len(batch)

    # ---- statistics and alerts -------------------------------------------------------------------------
    def evaluate(self) -> list[dict[str, Any]]:
        """Check every rule at the stream's current time; open and close alerts; deliver the new ones."""
        w = self.cfg.windows
        opened = []
        with self.lock:
            with self.engine.begin() as conn:
                now = store.latest_time(conn)
                if now is None:
                    return []
                end = now + timedelta(microseconds=1)  # the newest item belongs to the current window
                start = end - timedelta(minutes=w.current_minutes)
                base_start = start - timedelta(minutes=w.baseline_minutes)
                open_now = store.open_alerts(conn)
                for rule in self.cfg.rules:
                    neg = self.cfg.sentiment.negative_label
                    current = store.window_counts(conn, rule.by, start, end, neg)
                    baseline = store.window_counts(conn, rule.by, base_start, start, neg)
                    fired = check(rule, current, baseline)
                    keys = {k for (r, k) in open_now if r == rule.name}
                    to_open, to_close = transitions(rule.name, fired, keys)
                    for f in to_open:
                        row = {"rule": f.rule, "scope": f.scope, "key": f.key, "state": "open", "opened_at": now,
                               "value": f.value, "baseline": f.baseline, "volume": f.volume, "message": f.message}
                        row["id"] = conn.execute(store.alerts.insert().values(**row)).inserted_primary_key[0]
                        opened.append(row)
                    for key in to_close:
                        conn.execute(update(store.alerts).where(store.alerts.c.id == open_now[(rule.name, key)]["id"])
                                     .values(state="closed", closed_at=now))
                        self.log.info("alert closed", extra={"fields": {"rule": rule.name, "key": key}})
            for row in opened:  # after the commit: a slow webhook never holds a transaction open
                payload = {**row, "opened_at": row["opened_at"].isoformat() + "Z"}
                self.log.warning("alert", extra={"fields": payload})
                delivered = post_webhooks(self.cfg.webhooks, payload, self.log)
                if delivered is not None:
                    with self.engine.begin() as conn:
                        conn.execute(update(store.alerts).where(store.alerts.c.id == row["id"])
                                     .values(delivered=delivered))
        return opened

    def process(self) -> dict[str, int]:
        """One cycle: the watched folder, then classification, then the rules."""
        with self.lock:
            scanned = self.scan_folder()
            classified = self.classify_pending()
            opened = self.evaluate()
        return {**scanned, "classified": classified, "alerts_opened": len(opened)}

    def alerts(self, limit: int = 100) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(store.alerts).order_by(store.alerts.c.id.desc()).limit(limit))
            return [dict(r._mapping) for r in rows]

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return store.counts(conn)

    def close(self) -> None:
        self.engine.dispose()


def load_classifiers(cfg: MonitorConfig) -> dict[str, Classifier]:
    from tuneforge.run import load

    if not cfg.runs:
        raise TuneforgeError("The monitor config names no runs: add runs: {sentiment: RUN_DIR} (a folder that "
                             "`tuneforge train` wrote).")
    return {name: load(path) for name, path in cfg.runs.items()}


def open_monitor(config: str | Path | dict | MonitorConfig, overrides: list[str] | None = None,
                 classifiers: dict[str, Classifier] | None = None) -> Monitor:
    """``open_monitor("configs/monitor-airline.yaml")``; ``classifiers`` replaces loading ``runs`` (tests)."""
    from tuneforge.config import load_config

    if isinstance(config, MonitorConfig):
        cfg = load_config(MonitorConfig, data=config.model_dump(), overrides=overrides)
    elif isinstance(config, dict):
        cfg = load_config(MonitorConfig, data=config, overrides=overrides)
    else:
        cfg = load_config(MonitorConfig, path=config, overrides=overrides)
    if cfg.topic.pattern:
        try:
            re.compile(cfg.topic.pattern)
        except re.error as exc:
            raise TuneforgeError(f'topic.pattern "{cfg.topic.pattern}" is not a regular expression: {exc}.') from None
    classifiers = classifiers if classifiers is not None else load_classifiers(cfg)
    return Monitor(cfg, classifiers, store.connect(cfg.database))
