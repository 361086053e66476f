"""What the dashboard shows, as JSON: trend per topic, recent alerts, latest items, filter choices."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, select

from tuneforge.apps.monitor import store


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat() + "Z"


def summary(monitor, topic: str | None = None, source: str | None = None, buckets: int = 24,
            limit: int = 50) -> dict[str, Any]:
    """Buckets of ``windows.bucket_minutes`` ending at the stream's current time, filtered by topic/source."""
    cfg = monitor.cfg
    items = store.items
    width = timedelta(minutes=cfg.windows.bucket_minutes)
    where = [items.c.classified.is_(True)]
    if topic:
        where.append(items.c.topic == topic)
    if source:
        where.append(items.c.source == source)
    with monitor.engine.connect() as conn:
        now = store.latest_time(conn)
        topics = sorted(r[0] for r in conn.execute(select(items.c.topic).where(items.c.classified.is_(True))
                                                   .distinct()) if r[0] is not None)
        sources = sorted(r[0] for r in conn.execute(select(items.c.source).distinct()))
        trend: dict[str, list[dict[str, Any]]] = {}
        if now is not None:
            end = now + timedelta(microseconds=1)
            start = end - buckets * width
            rows = conn.execute(select(items.c.topic, items.c.time, items.c.sentiment)
                                .where(and_(*where, items.c.time >= start, items.c.time < end)))
            counts: dict[str, list[list[int]]] = {}
            for t, when, label in rows:
                b = min(buckets - 1, int((when - start) / width))
                cell = counts.setdefault(t, [[0, 0] for _ in range(buckets)])[b]
                cell[0] += 1
                cell[1] += label == cfg.sentiment.negative_label
            for t, cells in sorted(counts.items()):
                trend[t] = [{"start": _iso((start + i * width).replace(microsecond=0)), "volume": v,
                             "negative_share": n / v if v else None}
                            for i, (v, n) in enumerate(cells)]
        latest = conn.execute(select(items).where(and_(*where)).order_by(items.c.time.desc(), items.c.id.desc())
                              .limit(limit))
        latest_items = [{"id": r.id, "time": _iso(r.time), "text": r.text, "source": r.source, "topic": r.topic,
                         "sentiment": r.sentiment, "negative_score": r.negative_score} for r in latest]
        ids = [i["id"] for i in latest_items]
        preds: dict[str, dict[str, Any]] = {}
        if ids:
            for r in conn.execute(select(store.predictions).where(store.predictions.c.item_id.in_(ids))):
                preds.setdefault(r.item_id, {})[r.run] = {"label": r.label, "scores": json.loads(r.scores)}
        for item in latest_items:
            item["predictions"] = preds.get(item["id"], {})
        query = select(store.alerts).order_by(store.alerts.c.id.desc()).limit(limit)
        if topic:
            query = query.where(~and_(store.alerts.c.scope == "topic", store.alerts.c.key != topic))
        if source:
            query = query.where(~and_(store.alerts.c.scope == "source", store.alerts.c.key != source))
        alerts = [{**dict(r._mapping), "opened_at": _iso(r.opened_at), "closed_at": _iso(r.closed_at)}
                  for r in conn.execute(query)]
    return {"now": _iso(now), "bucket_minutes": cfg.windows.bucket_minutes, "topics": topics, "sources": sources,
            "trend": trend, "alerts": alerts, "items": latest_items, "counts": monitor.counts()}
