"""Items, predictions, folder progress and alerts in one SQL database (SQLAlchemy Core).

SQLite by file and PostgreSQL by URL run the same statements. Ingestion is idempotent: ``items.id`` is the
primary key and new rows go in with ``INSERT ... ON CONFLICT DO NOTHING``, so a repeated id is never counted
twice. A watched file's progress (byte offset) is written in the same transaction as the items read from
it, so after a crash either both are stored or neither, and a restart resumes at the right line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (BigInteger, Boolean, Column, DateTime, Float, ForeignKey, Integer, MetaData, String, Table,
                        Text, and_, case, create_engine, func, make_url, select, update)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, DatabaseError, NoSuchModuleError, OperationalError

from tuneforge.errors import TuneforgeError

metadata = MetaData()

items = Table(
    "monitor_items", metadata,
    Column("id", String(200), primary_key=True),
    Column("time", DateTime, nullable=False, index=True),  # stream time, naive UTC
    Column("text", Text, nullable=False),
    Column("source", String(100), nullable=False, index=True),
    Column("topic", String(100), index=True),  # the item's own topic until classified, then the final one
    Column("sentiment", String(100)),  # the sentiment run's label; NULL until classified
    Column("negative_score", Float),
    Column("classified", Boolean, nullable=False, default=False, index=True),
    Column("ingested_at", DateTime, nullable=False),
)

predictions = Table(
    "monitor_predictions", metadata,
    Column("item_id", String(200), ForeignKey("monitor_items.id"), primary_key=True),
    Column("run", String(100), primary_key=True),
    Column("label", String(100), nullable=False),
    Column("scores", Text, nullable=False),  # JSON {label: probability}
)

progress = Table(
    "monitor_file_progress", metadata,
    Column("path", String(1000), primary_key=True),
    Column("offset", BigInteger, nullable=False),  # bytes of complete lines consumed (files may pass 2 GiB)
    Column("lines", Integer, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

alerts = Table(
    "monitor_alerts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule", String(100), nullable=False),
    Column("scope", String(20), nullable=False),  # topic or source
    Column("key", String(100), nullable=False),
    Column("state", String(10), nullable=False, index=True),  # open, closed
    Column("opened_at", DateTime, nullable=False),  # stream time
    Column("closed_at", DateTime),
    Column("value", Float, nullable=False),  # the negative share that fired the rule
    Column("baseline", Float),
    Column("volume", Integer, nullable=False),
    Column("message", Text, nullable=False),
    Column("delivered", Boolean),  # webhook outcome (NULL: no webhook configured)
)


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _shown(url: str) -> str:
    """The URL with its password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def connect(url: str) -> Engine:
    """An engine with the tables created; a SQLite file's folder is created too."""
    use = "Use sqlite:///path/monitor.db or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB."
    try:
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            folder = Path(url.removeprefix("sqlite:///")).expanduser().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                why = ("part of that path is a file, not a folder" if isinstance(exc, (FileExistsError,
                                                                                      NotADirectoryError))
                       else exc.strerror or str(exc))
                raise TuneforgeError(f'database "{url}": cannot create the folder {folder} for it ({why}). Point '
                                     "database at a file in a folder you can write.") from None
        engine = create_engine(url, connect_args={"timeout": 30} if url.startswith("sqlite") else {},
                               pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise TuneforgeError(f'database "{_shown(url)}" is not a SQLAlchemy URL this install can use ({exc}). '
                             f"{use}") from None
    if engine.dialect.name not in ("sqlite", "postgresql"):
        raise TuneforgeError(f'database "{engine.url.render_as_string(hide_password=True)}": the monitor supports '
                             f"SQLite and PostgreSQL, not {engine.dialect.name}. {use}")
    try:
        metadata.create_all(engine)
    except OperationalError as exc:
        raise TuneforgeError(f'Cannot open the database "{engine.url.render_as_string(hide_password=True)}": '
                             f"{str(exc.orig).strip()}. Check that the server runs and the URL is right.") from None
    except DatabaseError as exc:  # e.g. a SQLite URL naming a file that is not a database
        raise TuneforgeError(f'The database "{engine.url.render_as_string(hide_password=True)}" cannot be used: '
                             f"{str(exc.orig).strip()}. Point database at a new file or the monitor's own "
                             "database; nothing was changed.") from None
    return engine


def _insert(conn: Connection, table: Table):
    """``INSERT ... ON CONFLICT DO NOTHING`` in the connection's dialect."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise TuneforgeError(f"The monitor supports SQLite and PostgreSQL, not {conn.dialect.name}.")
    return insert(table)


def insert_items(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Store new items (validated dicts: id, time, text, source, topic); returns how many were new."""
    if not rows:
        return 0
    now = utcnow()
    unique = list({row["id"]: row for row in reversed(rows)}.values())  # the first of a repeated id wins
    # RETURNING, not rowcount: drivers disagree on rowcount for ON CONFLICT DO NOTHING (psycopg gives -1)
    stmt = _insert(conn, items).on_conflict_do_nothing(index_elements=["id"]).returning(items.c.id)
    return len(conn.execute(stmt, [{**row, "classified": False, "ingested_at": now} for row in unique]).all())


def file_offset(conn: Connection, path: str) -> tuple[int, int]:
    row = conn.execute(select(progress.c.offset, progress.c.lines).where(progress.c.path == path)).first()
    return (row[0], row[1]) if row else (0, 0)


def set_file_offset(conn: Connection, path: str, offset: int, lines: int) -> None:
    values = {"offset": offset, "lines": lines, "updated_at": utcnow()}
    if conn.execute(update(progress).where(progress.c.path == path).values(**values)).rowcount == 0:
        conn.execute(progress.insert().values(path=path, **values))


def pending(conn: Connection, limit: int) -> list[dict[str, Any]]:
    rows = conn.execute(select(items.c.id, items.c.text, items.c.topic).where(items.c.classified.is_(False))
                        .order_by(items.c.time, items.c.id).limit(limit))
    return [dict(r._mapping) for r in rows]


def store_predictions(conn: Connection, results: list[dict[str, Any]]) -> None:
    """``results``: {"id", "topic", "sentiment", "negative_score", "runs": {run: {"label", "scores"}}}."""
    for r in results:
        for run, p in r["runs"].items():
            conn.execute(_insert(conn, predictions).values(item_id=r["id"], run=run, label=p["label"],
                                                           scores=json.dumps(p["scores"]))
                         .on_conflict_do_nothing(index_elements=["item_id", "run"]))
        conn.execute(update(items).where(items.c.id == r["id"]).values(
            topic=r["topic"], sentiment=r["sentiment"], negative_score=r["negative_score"], classified=True))


def latest_time(conn: Connection) -> datetime | None:
    return conn.execute(select(func.max(items.c.time)).where(items.c.classified.is_(True))).scalar()


def window_counts(conn: Connection, scope: str, start: datetime, end: datetime,
                  negative_label: str) -> dict[str, tuple[int, int]]:
    """{topic or source: (volume, negatives)} of classified items with start <= time < end."""
    col = items.c[scope]
    neg = func.sum(case((items.c.sentiment == negative_label, 1), else_=0))
    rows = conn.execute(select(col, func.count(), neg).where(and_(items.c.classified.is_(True),
                                                                  items.c.time >= start, items.c.time < end))
                        .group_by(col))
    return {r[0]: (int(r[1]), int(r[2] or 0)) for r in rows}


def open_alerts(conn: Connection) -> dict[tuple[str, str], dict[str, Any]]:
    rows = conn.execute(select(alerts).where(alerts.c.state == "open"))
    return {(r.rule, r.key): dict(r._mapping) for r in rows}


def counts(conn: Connection) -> dict[str, int]:
    total = conn.execute(select(func.count()).select_from(items)).scalar() or 0
    done = conn.execute(select(func.count()).select_from(items).where(items.c.classified.is_(True))).scalar() or 0
    n_alerts = conn.execute(select(func.count()).select_from(alerts)).scalar() or 0
    return {"items": int(total), "classified": int(done), "alerts": int(n_alerts)}
