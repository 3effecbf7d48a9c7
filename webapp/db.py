"""The database layer: one engine per app, sessions per app context, and SQLite tuned for workers.

This module imports nothing from the rest of the package, so models, services and migrations can
all import it without cycles.

SQLite notes (the embedded default, where several gunicorn workers share one file):
- WAL mode lets readers run beside the single writer.
- ``busy_timeout`` makes a second writer wait for the lock instead of failing at once.
- Every write transaction starts with ``BEGIN IMMEDIATE``. A deferred transaction that reads and
  then writes can fail with "database is locked" straight away, without waiting, when another
  worker wrote in between; taking the write lock up front makes writers queue instead.
- The hot path's writers (``fast_write``) queue in the kernel first (``WriterQueue``).
- The WAL is checkpointed at 16 MB (``WAL_PAGES``), not 4 MB: fewer, longer checkpoints.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
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

# SQLite checkpoints the WAL (copies it into the database, with two fsyncs) at the commit that
# takes it past this many pages (4 KB each): 16 MB, not SQLite's 4 MB. See ``WriterQueue``.
WAL_PAGES = 4000


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
    writers: WriterQueue | None = None
    kept: KeptConnections | None = None
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
        cur.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")
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


class WriterQueue:
    """Writers of one SQLite file wait their turn in the kernel, not in SQLite's busy loop.

    SQLite lets one writer in at a time. Measured with 5 gunicorn workers logging calls, two
    things went wrong without a queue:
    - the waiting writers retry after sleeps that grow from 1 ms to 100 ms (``busy_timeout``),
      so the lock often sat free while every waiter slept;
    - the commit that passes the WAL's size limit checkpoints it (copies it back into the
      database), but the next writer had already started, so the WAL could never start over:
      it grew without end (24 MB in half a minute), every later commit tried another
      checkpoint (an fsync every 5 requests), and reads slowed as the WAL grew.
    An exclusive ``flock`` on a side file, held from BEGIN to the end of the commit (the
    checkpoint included), makes the writers queue in the kernel, which wakes the next one as
    soon as the turn is let go, and keeps them out while the checkpoint runs, so the WAL starts
    over at its size limit. A thread lock orders the threads of one process the same way
    (they share the flock). It is only an ordering: a writer that skips it (another program,
    the ORM's writes) still meets the others at SQLite's own lock, as before. Not re-entrant:
    one fast write at a time per thread.

    The checkpoint holds the turn through its fsyncs, tens of milliseconds on a busy disk. At
    SQLite's default size limit (1000 pages, about every 120 logged calls) that came to
    0.36-0.6 ms of held turn per call, more than the write itself; at ``WAL_PAGES`` (4000) a
    checkpoint takes longer but comes four times less often: 0.16-0.21 ms per call.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._threads = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    def _file(self) -> int:
        # One descriptor per process: a forked worker must not share its parent's, or their
        # flocks would be one and the same lock.
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold the turn for the duration of the block."""
        with self._threads:
            fd = self._file()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)


class _Held:
    """One thread's kept connection and the generation it was made in."""

    def __init__(self, conn: Any, generation: int) -> None:
        self.conn = conn
        self.pid = os.getpid()
        self.generation = generation


class KeptConnections:
    """Each thread's own SQLite connection for the hot path, opened once and kept.

    Taking a connection from SQLAlchemy's pool and giving it back (with its reset) was about
    5% of logging a call, and as much again for the session lookup that starts every request.
    A SQLite connection is cheap to keep: each worker thread keeps one, made by the engine (so
    ``_tune_sqlite``'s PRAGMAs apply) and then detached from the pool.

    Only its own thread ever closes a kept connection. ``engine.dispose()`` (which may run on
    any thread, while other threads are mid-request on theirs) only starts a new generation:
    each thread closes its stale connection at its next ``get()``, and a thread that ends
    takes its connection with it. (Closing another thread's connection under a running
    statement crashed the process.) A forked child makes its own and leaves its parent's
    alone: SQLite connections must not cross a fork.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._local = threading.local()
        self._inherited: list[_Held] = []  # a parent's, kept open and unused after a fork
        self._generation = 0
        sa.event.listen(engine, "engine_disposed", self.close_all)

    def get(self) -> Any:
        """This thread's connection (the driver's own), made on first use."""
        held: _Held | None = getattr(self._local, "held", None)
        if held is not None and held.pid == os.getpid() and held.generation == self._generation:
            return held.conn
        if held is not None:
            if held.pid != os.getpid():
                self._inherited.append(held)
            else:  # stale: the engine was disposed since
                with suppress(Exception):
                    held.conn.close()
        fairy = self.engine.raw_connection()
        fairy.detach()  # ours now: the pool neither counts it nor resets it
        held = self._local.held = _Held(fairy.dbapi_connection, self._generation)
        return held.conn

    def drop(self) -> None:
        """Close and forget this thread's connection (after an error it may not survive)."""
        held = getattr(self._local, "held", None)
        self._local.held = None
        if held is not None and held.pid == os.getpid():
            with suppress(Exception):
                held.conn.close()

    def close_all(self, _engine: Any = None) -> None:
        """On ``engine.dispose()``: every thread makes a new connection at its next ``get()``;
        this thread's own is closed now."""
        self._generation += 1
        self.drop()


def writer_queue(engine: sa.Engine) -> WriterQueue | None:
    """The queue for ``engine``'s database file (SQLite on disk only)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    return WriterQueue(os.path.abspath(database) + "-writers")


class Database:
    """The app's database: ``db.session`` for services, ``db.engine`` for scripts and tests."""

    def init_app(self, app: Flask) -> None:
        engine = make_engine(app.config["DATABASE_URL"])
        write_engine = engine.execution_options(sqlite_immediate=True)
        writers = writer_queue(engine)
        app.extensions["sqlalchemy"] = _State(
            engine=engine,
            write_engine=write_engine,
            writers=writers,
            kept=KeptConnections(engine) if writers else None,
        )
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
        SQLAlchemy's per-statement execution layer. On SQLite, on the thread's own kept
        connection (``KeptConnections``), with concurrent callers taking turns through the
        ``WriterQueue`` before they ask for SQLite's lock.
        """
        state = self._state
        engine = state.engine
        if state.writers is None or state.kept is None:  # PostgreSQL: the pool, pre-ping and all
            raw = engine.raw_connection()
            try:
                if engine.dialect.name == "sqlite":  # (in memory)
                    raw.driver_connection.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
                yield Writer(raw.cursor(), engine.dialect)
                raw.commit()
            except BaseException:
                raw.rollback()
                raise
            finally:
                raw.close()  # back to the pool
            return
        conn = state.kept.get()
        with state.writers.turn():
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield Writer(conn.cursor(), engine.dialect)
                conn.commit()
            except BaseException:
                try:
                    conn.rollback()
                except Exception:
                    state.kept.drop()
                raise

    def read_first(self, prepared: Prepared, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """The first row of a ``Prepared`` select, read in a transaction of its own.

        For the lookup that starts every request (the session): on SQLite, on the thread's kept
        connection (``KeptConnections``); elsewhere, a pooled connection given back at once.
        """
        state = self._state
        if state.kept is not None:
            conn = state.kept.get()
            try:
                return Writer(conn.cursor(), state.engine.dialect).first(prepared, params)
            except BaseException:
                state.kept.drop()
                raise
        raw = state.engine.raw_connection()
        try:
            return Writer(raw.cursor(), state.engine.dialect).first(prepared, params)
        finally:
            raw.close()

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

    def run(self, prepared: Prepared, params: dict[str, Any]) -> int:
        """Execute a statement whose rows are not needed; return the driver's ``rowcount``.

        (Rows inserted, updated or deleted; ``ON CONFLICT DO NOTHING`` counts 0 on a conflict.)
        """
        self._run(prepared, params)
        return self.cursor.rowcount

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
