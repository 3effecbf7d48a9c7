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

import logging
from collections.abc import Callable, Iterator
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
    _migration_engine: sa.Engine | None = None

    @property
    def engines(self) -> dict[str, sa.Engine]:
        return {"default": self.migration_engine}

    @property
    def migration_engine(self) -> sa.Engine:
        """The engine migrations run on: on SQLite, one with foreign keys off.

        SQLite cannot alter most of a table in place, so a migration rebuilds it (Alembic's
        batch mode: copy, DROP, rename). With foreign keys on, that DROP deletes every row that
        references the table, through ON DELETE CASCADE: rebuilding ``users`` emptied clients,
        touches and callbacks. SQLite's documented procedure is to turn the keys off for the
        change and run ``PRAGMA foreign_key_check`` before committing it, which this engine does.
        """
        if self.engine.dialect.name != "sqlite":
            return self.engine
        if self._migration_engine is None:
            url = self.engine.url.render_as_string(hide_password=False)
            self._migration_engine = make_engine(url, foreign_keys=False)
        return self._migration_engine


def make_engine(url: str, *, foreign_keys: bool = True) -> sa.Engine:
    """Create an engine for ``url`` with the connection settings this app relies on.

    ``foreign_keys=False`` is for migrations on SQLite only (see ``_State.migration_engine``).
    """
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30}, pool_size=10)
        _tune_sqlite(engine, foreign_keys)
        return engine
    # pre_ping: after a PostgreSQL restart, stale pooled connections are replaced, not used.
    return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def _tune_sqlite(engine: sa.Engine, foreign_keys: bool = True) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy (below) emit BEGIN itself, instead of pysqlite's implicit BEGIN.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    if not foreign_keys:

        @sa.event.listens_for(engine, "commit")
        def _check_keys(conn: sa.Connection) -> None:
            # Keys off must not let a change leave rows pointing nowhere: raising here rolls
            # the whole transaction (the migration step) back.
            bad = conn.connection.driver_connection.execute("PRAGMA foreign_key_check").fetchall()
            if bad:
                raise sa.exc.IntegrityError(
                    "PRAGMA foreign_key_check", None, Exception(f"broken references: {bad[:5]}")
                )

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

    @contextmanager
    def fast_write(self) -> Iterator[Writer]:
        """Like ``write``, but straight on the driver's connection, for ``Prepared`` statements.

        For the hot path (logging a call): the same one short IMMEDIATE transaction, without
        SQLAlchemy's per-statement execution layer.
        """
        engine = self._state.engine
        raw = engine.raw_connection()
        try:
            if engine.dialect.name == "sqlite":
                raw.driver_connection.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
            yield Writer(raw.cursor(), engine.dialect)
            raw.commit()
        except BaseException:
            raw.rollback()
            raise
        finally:
            raw.close()  # back to the pool

    @staticmethod
    def _close_session(_exc: BaseException | None) -> None:
        session = g.pop("_db_session", None)
        if session is None:
            return
        try:
            session.close()
        except sa.exc.DBAPIError as exc:
            # The answer is already made: a connection lost after it (a database restart) must
            # not turn it into a 500. SQLAlchemy has already discarded the dead connection.
            logging.getLogger(__name__).warning("closing the session failed: %s", exc)


db = Database()


@dataclass
class _Compiled:
    sql: str
    names: list[str] | None  # bind names in order, for positional drivers (SQLite)
    binds: list[tuple[str, Callable[[Any], Any]]]  # bind processors (e.g. instants to text)
    defaults: dict[str, Any]  # Python-side column defaults an INSERT must fill in itself
    fixed: dict[str, Any]  # values written into the statement (e.g. status == "open")
    results: list[Callable[[Any], Any] | None]  # result processors, one per column
    keys: list[str]  # result column names


class Prepared:
    """A Core statement compiled once per dialect, for ``Writer``.

    The SQL and its type conversions still come from SQLAlchemy (the statement is ordinary
    Core); only the per-call machinery (cache lookup, execution context) is skipped. Give an
    INSERT the ``column_keys`` it will be sent, so the compiled SQL names exactly those (plus
    columns with Python-side defaults, which ``Writer`` fills in as SQLAlchemy would).
    """

    def __init__(self, stmt: sa.Executable, column_keys: list[str] | None = None) -> None:
        self.stmt = stmt
        self.column_keys = column_keys
        self._by_dialect: dict[str, _Compiled] = {}

    def compiled(self, dialect: sa.Dialect) -> _Compiled:
        """The statement compiled for ``dialect`` (done once, then cached)."""
        done = self._by_dialect.get(dialect.name)
        if done is None:
            done = self._by_dialect[dialect.name] = self._compile(dialect)
        return done

    def _compile(self, dialect: sa.Dialect) -> _Compiled:
        compiled: Any = self.stmt.compile(dialect=dialect, column_keys=self.column_keys)
        defaults = {}
        for column in getattr(compiled, "insert_prefetch", ()):
            default = column.default
            if default is None or not (default.is_scalar or default.is_callable):
                raise ValueError(f"{column.key} has a default Prepared cannot compute")
            defaults[column.key] = default
        results = [
            entry.type._cached_result_processor(dialect, None) for entry in compiled._result_columns
        ]
        return _Compiled(
            sql=compiled.string,
            names=list(compiled.positiontup) if compiled.positional else None,
            binds=list(compiled._bind_processors.items()),
            defaults=defaults,
            fixed={
                name: bind.effective_value
                for name, bind in compiled.binds.items()
                if not bind.required
            },
            results=results,
            keys=[entry.keyname for entry in compiled._result_columns],
        )


class Writer:
    """Runs ``Prepared`` statements on one DBAPI cursor (see ``Database.fast_write``).

    Driver errors come out as SQLAlchemy's exceptions (``IntegrityError`` and so on), as they
    would from a ``Connection``.
    """

    def __init__(self, cursor: Any, dialect: sa.Dialect) -> None:
        self.cursor = cursor
        self.dialect = dialect

    def _run(self, prepared: Prepared, params: dict[str, Any]) -> _Compiled:
        compiled = prepared.compiled(self.dialect)
        params = {**compiled.fixed, **params}
        for key, default in compiled.defaults.items():
            params[key] = default.arg if default.is_scalar else default.arg(None)
        for name, process in compiled.binds:
            params[name] = process(params[name])
        args: Any = params if compiled.names is None else [params[n] for n in compiled.names]
        try:
            self.cursor.execute(compiled.sql, args)
        except self.dialect.loaded_dbapi.Error as exc:
            raise sa.exc.DBAPIError.instance(
                compiled.sql, args, exc, self.dialect.loaded_dbapi.Error, dialect=self.dialect
            ) from exc
        return compiled

    def run(self, prepared: Prepared, params: dict[str, Any]) -> None:
        """Execute a statement whose result is not needed."""
        self._run(prepared, params)

    def first(self, prepared: Prepared, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """Execute and return the first row (converted like SQLAlchemy would), or None."""
        compiled = self._run(prepared, params)
        row = self.cursor.fetchone()
        if row is None:
            return None
        self.cursor.fetchall()  # drain, so the statement is finished
        return tuple(
            value if process is None else process(value)
            for value, process in zip(row, compiled.results, strict=True)
        )

    def first_mapping(self, prepared: Prepared, params: dict[str, Any]) -> dict[str, Any] | None:
        """``first``, as a dict of column name to value."""
        row = self.first(prepared, params)
        keys = prepared.compiled(self.dialect).keys
        return None if row is None else dict(zip(keys, row, strict=True))
