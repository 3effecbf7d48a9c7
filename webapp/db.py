"""The database layer: one engine per app, sessions per app context, and SQLite tuned for workers.

This module imports nothing from the rest of the package, so models, services and migrations can
all import it without cycles.

SQLite notes (the embedded default, where several gunicorn workers share one file):
- WAL mode lets readers run beside the single writer.
- ``busy_timeout`` makes a second writer wait for the lock instead of failing at once.
- Every write transaction starts with ``BEGIN IMMEDIATE``. A deferred transaction that reads and
  then writes can fail with "database is locked" straight away, without waiting, when another
  worker wrote in between; taking the write lock up front makes writers queue instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app, g, has_request_context, request
from sqlalchemy.orm import DeclarativeBase, Session

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Base(DeclarativeBase):
    """Declarative base for every model; constraint names are stable for Alembic."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(sa.types.TypeDecorator):
    """An instant: stored as UTC, always returned as an aware datetime in UTC.

    Naive datetimes are refused, because a naive value is a bug waiting for a time zone.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        value = value.astimezone(UTC)
        # SQLite has no time zone type: store naive UTC, so text comparisons order correctly.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


@dataclass
class _State:
    """Per-app database state; ``metadata``/``engines`` are what Flask-Alembic looks for."""

    engine: sa.Engine
    write_engine: sa.Engine
    metadata: sa.MetaData = field(default_factory=lambda: Base.metadata)

    @property
    def engines(self) -> dict[str, sa.Engine]:
        return {"default": self.engine}


def make_engine(url: str) -> sa.Engine:
    """Create an engine for ``url`` with the connection settings this app relies on."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30}, pool_size=10)
        _tune_sqlite(engine)
        return engine
    # pre_ping: after a PostgreSQL restart, stale pooled connections are replaced, not used.
    return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def _tune_sqlite(engine: sa.Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy (below) emit BEGIN itself, instead of pysqlite's implicit BEGIN.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        # Straight to the driver: this runs for every transaction, and needs no result.
        conn.connection.driver_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """The app's database: ``db.session`` for services, ``db.engine`` for scripts and tests."""

    def init_app(self, app: Flask) -> None:
        engine = make_engine(app.config["DATABASE_URL"])
        write_engine = engine.execution_options(sqlite_immediate=True)
        app.extensions["sqlalchemy"] = _State(engine=engine, write_engine=write_engine)
        app.teardown_appcontext(self._close_session)

    @property
    def _state(self) -> _State:
        return current_app.extensions["sqlalchemy"]

    @property
    def engine(self) -> sa.Engine:
        return self._state.engine

    @property
    def session(self) -> Session:
        """The app context's session. Requests that change data get a write session."""
        session = g.get("_db_session")
        if session is None:
            writing = not has_request_context() or request.method not in READ_METHODS
            state = self._state
            bind = state.write_engine if writing else state.engine
            session = g._db_session = Session(bind=bind, expire_on_commit=False)
        return session

    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """A Core connection in one short write transaction (IMMEDIATE on SQLite)."""
        with self._state.write_engine.begin() as conn:
            yield conn

    @staticmethod
    def _close_session(_exc: BaseException | None) -> None:
        session = g.pop("_db_session", None)
        if session is not None:
            session.close()


db = Database()
