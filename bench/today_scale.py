"""GET /api/v1/today for one rep, in a database of 10 reps and in one of 1,000: does it grow?

    .venv/bin/python bench/today_scale.py [--runs 200] [--keep | --reuse] [--write-plans]
    TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \
        .venv/bin/python bench/today_scale.py --reuse --write-plans

Goal (issue 7): the measured rep's today's list takes at most 1.2 times as long in the large
database as in the small one, on SQLite and on PostgreSQL, with the same small number of indexed
statements per request (no N+1).

The data. Each database holds the same measured rep (America/Los_Angeles; 2,000 clients and
50,000 touches over two years, made by bench/stats.py's rules: tiers A/B/C, calls on
business days in working hours, most unanswered calls promising a callback that a later call
keeps, on time or late, or leaves open and overdue; a few promises cancelled, a few clients
archived) and other reps: 9 in "small", 999 in "large", each with 100-200 clients and 20-25
touches per client over the same two years (``--other-clients``, ``--other-touches``), made by
the same rules with their own seeds and time zones. The measured rep's data is identical in both,
and so is its answer (checked). Rows go in in time order across all reps (touches and kept
promises day by day, the open promises and the clients at the end, by creation time), so the
measured rep's rows are spread over the tables' pages as in a shared database that grew over
two years, not packed together. The schema is made by ``flask --app webapp db upgrade``; the
rows are bulk-written (executemany on SQLite, COPY on PostgreSQL through psycopg) with foreign
keys checked afterwards, not per row.

The databases are built once per day and kept with ``--keep`` (SQLite files under
``--cache-dir``, PostgreSQL databases ``touchbase_bench_today_{small,large}_base``); ``--reuse``
takes them again if they were made by the same parameters on the same day. Every run works on
copies (a file copy; ``CREATE DATABASE ... TEMPLATE``), so ANALYZE never leaks into the cache.

The timing. Both databases are open in this process, each behind its own app and its own
logged-in test client. Per round, small and large take turns (ABBA order), each timing, for the
measured rep: the request (``GET /api/v1/today`` through the Flask test client), the service
call alone (``services.today.today_for`` in a request context), and the SQL alone (the
statements one request ran, captured with a ``before_cursor_execute`` listener, replayed with
their parameters on a pooled connection and fetched). The ratio is large / small.

Twice per engine: first as loaded, with no planner statistics (the app never runs ANALYZE on
SQLite; on PostgreSQL autovacuum is turned off on these tables so that the state is kept), then
after ``ANALYZE`` (SQLite) / ``VACUUM ANALYZE`` (PostgreSQL) (``--analyze``).

The plans. For every statement of one request: SQLite's ``EXPLAIN QUERY PLAN`` and the number of
virtual machine steps it takes (counted with a progress handler: the same count in both
databases means no other rep's row was visited); PostgreSQL's ``EXPLAIN (ANALYZE, BUFFERS)``,
both as first run and in the steady state the app reaches (psycopg prepares a statement on its
fifth run, and PostgreSQL may then switch to a generic plan: shown by ``PREPARE`` + six
``EXECUTE``). ``--write-plans`` writes them to docs/query-plans-today.md.

``--index SQL`` runs a CREATE INDEX on the working copies before timing, to try an index without
a migration.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as wall
from itertools import accumulate
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from psycopg import sql as pgsql  # noqa: E402

from tests.conftest import Rep, register_rep  # noqa: E402
from webapp import create_app, scheduling  # noqa: E402
from webapp.db import db  # noqa: E402
from webapp.models import callbacks, clients, touches, users  # noqa: E402
from webapp.security import CurrentUser  # noqa: E402
from webapp.services import today  # noqa: E402

GOAL = 1.2
EMAIL = "measured@example.com"
ZONE = "America/Los_Angeles"
OTHER_ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "Europe/London",
    "Europe/Berlin",
)
BUILD_VERSION = 2  # bump when the data changes shape, so old caches are not reused
PG_PREFIX = "touchbase_bench_today"
TABLES = ("users", "clients", "touches", "callbacks", "push_subscriptions")
APP_CONFIG = {"SECRET_KEY": "bench", "PASSWORD_HASH_METHOD": "scrypt:1024:8:1"}
MIDNIGHT = wall(0, 0)
CALL_TIME = scheduling.DEFAULT_CALL_TIME

FIRST = ("Ana", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jon", "Kim")
LAST = ("Moreau", "Okafor", "Schmidt", "Tanaka", "Silva", "Novak", "Reyes", "Larsen", "Kowalski")
NOTES = (
    "wants the spring catalogue",
    "asked about volume pricing",
    "new warehouse opening in March",
    "call back after the trade show",
    "happy with the last order",
    "considering a second line",
)
CLIENT_NOTES = (
    "Owner; decides alone. Prefers calls before 10. Two stores, the second opened last year.",
    "Buys for three shops; the accountant signs off anything above 5,000. Ask for Maria.",
    "Moved from our competitor in 2023 after a late delivery there; price-sensitive.",
    None,
    None,
)
POINTS = ("- ask how the new warehouse is going", "Mention the loyalty discount", None, None)

# The rows are tuples in the tables' own column order.
COLUMNS = {table.name: [c.name for c in table.c] for table in (clients, touches, callbacks)}
# Callback rows are lists while their promise is open; these are their fields by position.
CB_DUE, CB_STATUS, CB_CREATED, CB_UPDATED, CB_DONE, CB_NOTIFIED = range(5, 11)
CB_ATTEMPTS = 12
assert COLUMNS["callbacks"][CB_DUE : CB_NOTIFIED + 1] == (
    ["due_at", "status", "created_at", "updated_at", "done_at", "notified_at"]
)
assert COLUMNS["callbacks"][CB_ATTEMPTS] == "send_attempts"
# Client rows are lists while they change; these are their fields by position.
C_CREATED, C_UPDATED, C_ARCHIVED, C_LAST_TOUCH, C_LAST_REACHED, C_ATTEMPTS = range(10, 16)
assert COLUMNS["clients"][C_CREATED : C_ATTEMPTS + 1] == [
    *("created_at", "updated_at", "archived_at"),
    *("last_touch_at", "last_reached_at", "attempts_since_reached"),
]
assert COLUMNS["touches"][5] == "happened_at"


# ---------------------------------------------------------------------------------------------
# The data


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:32]}"


def _tags(rng: random.Random) -> tuple[list[str], str | None]:
    """As bench/stats.py: 15% tier A, 30% B, 35% C, the rest none, in the spellings reps use."""
    roll = rng.random()
    tier = "A" if roll < 0.15 else "B" if roll < 0.45 else "C" if roll < 0.8 else None
    tags = [] if tier is None else [rng.choice((tier, f"tier {tier.lower()}", f"Tier:{tier}"))]
    if rng.random() < 0.3:
        tags.append(rng.choice(("wholesale", "retail", "north", "south")))
    if tier == "C" and rng.random() < 0.05:
        tags.append("B")
    return tags, tier


def _naive(instant: datetime) -> datetime:
    return instant.astimezone(UTC).replace(tzinfo=None)


class RepSim:
    """One rep's two years, a business day at a time, by bench/stats.py's rules (no holidays).

    Each day's calls go first to the clients promised for that day (80% of them are called on
    the day), then to others picked by tier weight. A call keeps the client's open promise; an
    unanswered one promises a callback in one or two business days (70%). Instants are naive
    UTC here (the loaders write them as the app would).
    """

    def __init__(
        self,
        seed: int,
        user_id: str,
        zone: str,
        n_clients: int,
        n_touches: int,
        first: date,
        cut: datetime,
    ) -> None:
        rng = self.rng = random.Random(seed)
        self.user_id = user_id
        self.tz = ZoneInfo(zone)
        self.cut = _naive(cut)
        self.today = scheduling.local_today(cut, self.tz)
        self.days: dict[date, int] = {}
        day = first
        while day <= self.today:
            if scheduling.is_business_day(day):
                self.days[day] = len(self.days)
            day += timedelta(days=1)
        self.per_day = n_touches / len(self.days)
        self.clients: list[list[Any]] = []
        weights = []
        start = datetime.combine(first, MIDNIGHT)
        for i in range(n_clients):
            tags, tier = _tags(rng)
            created = start - timedelta(seconds=rng.randrange(400 * 86400))
            archived = self.cut - timedelta(seconds=rng.randrange(300 * 86400))
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)} {i}"
            self.clients.append(
                [
                    _uuid(rng),
                    user_id,
                    name,
                    f"+1312555{rng.randrange(10000):04d}",
                    f"{name.split()[0].lower()}{i}@example.com" if rng.random() < 0.6 else None,
                    f"Company {rng.randrange(700)}" if rng.random() < 0.8 else None,
                    rng.choice(CLIENT_NOTES),
                    rng.choice(POINTS),
                    json.dumps(tags),
                    rng.choice((14, 60)) if rng.random() < 0.05 else None,
                    created,
                    created,
                    archived if rng.random() < 0.03 else None,
                    None,  # last_touch_at
                    None,  # last_reached_at
                    0,  # attempts_since_reached
                    None,
                ]
            )
            weights.append({"A": 6.0, "B": 2.0, "C": 1.0, None: 0.5}[tier])
        self.cum = list(accumulate(weights))
        self.population = range(n_clients)
        self.open: dict[int, list[Any]] = {}
        self.promised_for: dict[date, list[int]] = {}
        self.due_at: dict[tuple[date, int], tuple[date, datetime]] = {}

    def day(self, day: date) -> tuple[list[tuple], list[tuple]]:
        """The touches of ``day`` and the promises they kept."""
        n = self.days.get(day)
        if n is None:
            return [], []
        rng = self.rng
        quota = round(self.per_day * (n + 1)) - round(self.per_day * n)
        start = _naive(scheduling.at_local(day, MIDNIGHT, self.tz))
        rand = rng.random
        times = sorted(start + timedelta(seconds=28800 + 36000 * rand()) for _ in range(quota))
        if day == self.today:
            times = [t for t in times if t < self.cut]
        due = [c for c in self.promised_for.pop(day, []) if rng.random() < 0.8]
        picks = due[: len(times)]
        picks += rng.choices(self.population, cum_weights=self.cum, k=len(times) - len(picks))
        rng.shuffle(picks)
        touches: list[tuple] = []
        kept: list[tuple] = []
        for happened, owner in zip(times, picks, strict=True):
            client = self.clients[owner]
            if client[C_ARCHIVED] is not None and happened >= client[C_ARCHIVED]:
                continue  # nobody calls an archived client
            promise = self.open.pop(owner, None)
            if promise is not None:
                promise[CB_STATUS] = "done"
                promise[CB_DONE] = promise[CB_UPDATED] = happened
                if promise[CB_DUE] <= happened:
                    promise[CB_NOTIFIED] = promise[CB_DUE]
                    promise[CB_ATTEMPTS] = 1
                kept.append(tuple(promise))
            roll = rand()
            outcome = "reached" if roll < 0.4 else "left_message" if roll < 0.7 else "no_answer"
            touch_id = _uuid(rng)
            client[C_LAST_TOUCH] = happened
            if outcome == "reached":
                client[C_LAST_REACHED] = happened
                client[C_ATTEMPTS] = 0
            else:
                client[C_ATTEMPTS] += 1
            callback_at = callback_id = None
            if outcome != "reached" and rand() < 0.7:
                later = 2 if outcome == "left_message" else 1
                due_day, callback_at = self._due(day, later)
                callback_id = _uuid(rng)
                self.open[owner] = [
                    callback_id,
                    self.user_id,
                    client[0],
                    touch_id,
                    happened,  # origin_at
                    callback_at,
                    "open",
                    happened,
                    happened,
                    None,  # done_at
                    None,  # notified_at
                    None,  # claimed_until
                    0,  # send_attempts
                    None,  # last_error
                    None,  # claim_token
                ]
                self.promised_for.setdefault(due_day, []).append(owner)
            note = NOTES[int(rand() * len(NOTES))] if rand() < 0.3 else None
            touches.append(
                (
                    touch_id,
                    self.user_id,
                    client[0],
                    outcome,
                    note,
                    happened,
                    callback_at,
                    callback_id,
                    happened,
                    "bench",
                )
            )
        return touches, kept

    def _due(self, day: date, later: int) -> tuple[date, datetime]:
        """The day and instant of a callback promised ``later`` business days after ``day``."""
        found = self.due_at.get((day, later))
        if found is None:
            due_day = scheduling.add_business_days(day, later)
            found = due_day, _naive(scheduling.at_local(due_day, CALL_TIME, self.tz))
            self.due_at[day, later] = found
        return found

    def finish(self) -> tuple[list[tuple], list[tuple]]:
        """The promises still open (some cancelled: all of an archived client's) and the clients."""
        left = []
        for owner, promise in self.open.items():
            archived = self.clients[owner][C_ARCHIVED]
            if archived is not None or self.rng.random() < 0.05:
                promise[CB_STATUS] = "cancelled"
                promise[CB_UPDATED] = archived or self.cut
            if promise[CB_DUE] < self.cut:
                promise[CB_NOTIFIED] = promise[CB_DUE]
                promise[CB_ATTEMPTS] = 1
            left.append(tuple(promise))
        for c in self.clients:
            c[C_UPDATED] = max(
                c[C_CREATED], c[C_LAST_TOUCH] or c[C_CREATED], c[C_ARCHIVED] or c[C_CREATED]
            )
        return left, [tuple(c) for c in self.clients]


@dataclass
class Spec:
    """What one database holds."""

    size: str
    reps: int  # the measured rep included
    clients: int
    touches: int
    other_clients: tuple[int, int]
    other_touches: tuple[int, int]
    cut: datetime  # the data ends here: today 00:00 UTC, so both databases agree all day

    def fingerprint(self) -> str:
        head = sorted(p.name for p in (ROOT / "webapp" / "migrations").glob("0*.py"))[-1]
        text = json.dumps(
            [
                BUILD_VERSION,
                self.reps,
                self.clients,
                self.touches,
                self.other_clients,
                self.other_touches,
                self.cut.isoformat(),
                head,
            ]
        )
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def generate(
    spec: Spec, measured_id: str, others: list[tuple[str, str]]
) -> Iterator[tuple[str, list[tuple]]]:
    """Yield (table, rows) in insertion order: ten days of touches and kept promises at a time,
    every rep's interleaved by time; then the open promises and the clients, by creation."""
    first = (spec.cut - timedelta(days=730)).date()
    sims = [RepSim(7, measured_id, ZONE, spec.clients, spec.touches, first, spec.cut)]
    for n, (user_id, zone) in enumerate(others):
        rng = random.Random(1000 + n)
        n_clients = rng.randint(*spec.other_clients)
        n_touches = n_clients * rng.randint(*spec.other_touches)
        sims.append(RepSim(1000 + n, user_id, zone, n_clients, n_touches, first, spec.cut))
    last = max(sim.today for sim in sims)
    touches: list[tuple] = []
    kept: list[tuple] = []
    day, chunk = first, 0
    while day <= last:
        for sim in sims:
            t, k = sim.day(day)
            touches += t
            kept += k
        chunk += 1
        day += timedelta(days=1)
        if chunk == 10 or day > last:
            touches.sort(key=lambda row: row[5])
            kept.sort(key=lambda row: row[CB_DONE])
            yield "touches", touches
            yield "callbacks", kept
            touches, kept, chunk = [], [], 0
    open_rows: list[tuple] = []
    client_rows: list[tuple] = []
    for sim in sims:
        left, made = sim.finish()
        open_rows += left
        client_rows += made
    open_rows.sort(key=lambda row: row[CB_CREATED])
    client_rows.sort(key=lambda row: row[C_CREATED])
    yield "callbacks", open_rows
    yield "clients", client_rows


# ---------------------------------------------------------------------------------------------
# Building the databases


class SqliteLoader:
    """executemany on one connection, one transaction, foreign keys checked at the end."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        for pragma in ("journal_mode=DELETE", "synchronous=OFF", "cache_size=-1000000"):
            self.conn.execute(f"PRAGMA {pragma}")
        self.conn.execute("BEGIN")

    @staticmethod
    def instant(value: datetime) -> str:
        """The text the app's UTCDateTime writes on SQLite (checked in build())."""
        return value.isoformat(" ", "microseconds")

    def write(self, table: str, rows: list[tuple]) -> None:
        cols = COLUMNS[table]
        spots = [i for i, c in enumerate(cols) if c.endswith("_at")]
        fmt = self.instant
        out = []
        for row in rows:
            row = list(row)
            for i in spots:
                if row[i] is not None:
                    row[i] = fmt(row[i])
            out.append(row)
        marks = ", ".join("?" * len(cols))
        self.conn.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})", out)

    def scalar(self, query: str) -> Any:
        return self.conn.execute(query).fetchone()[0]

    def close(self) -> None:
        self.conn.execute("COMMIT")
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.close()


class PgLoader:
    """COPY on one connection, one transaction; triggers (the foreign keys) off while loading."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(_libpq(url))
        self.conn.execute("SET session_replication_role = replica")
        self.conn.execute("SET TIME ZONE 'UTC'")

    def write(self, table: str, rows: list[tuple]) -> None:
        cols = ", ".join(COLUMNS[table])
        with self.conn.cursor().copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def scalar(self, query: str) -> Any:
        return self.conn.execute(query).fetchone()[0]

    def close(self) -> None:
        self.conn.commit()
        self.conn.close()


def _libpq(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _pg_url(base_url: str, database: str) -> str:
    return sa.make_url(base_url).set(database=database).render_as_string(hide_password=False)


def _admin(base_url: str) -> psycopg.Connection:
    return psycopg.connect(_libpq(base_url), autocommit=True)


def _migrate(url: str) -> None:
    """``flask --app webapp db upgrade`` on ``url``, as a deployment would."""
    env = dict(os.environ, TOUCHBASE_DATABASE_URL=url)
    subprocess.run(
        [str(Path(sys.executable).parent / "flask"), "--app", "webapp", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )


def build(url: str, spec: Spec) -> dict[str, Any]:
    """Migrate ``url`` (empty), register the measured rep, bulk-load everything; return counts."""
    started = time.perf_counter()
    _migrate(url)
    backend = sa.make_url(url).get_backend_name()
    if backend == "postgresql":
        with psycopg.connect(_libpq(url), autocommit=True) as conn:
            for table in TABLES:
                conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
    app = create_app({"DATABASE_URL": url, **APP_CONFIG})
    measured_id = register_rep(app, email=EMAIL, timezone=ZONE).user["id"]
    rng = random.Random(99)
    others = [(_uuid(rng), rng.choice(OTHER_ZONES)) for _ in range(spec.reps - 1)]
    engine = app.extensions["sqlalchemy"].engine
    with engine.begin() as conn:
        conn.execute(
            sa.insert(users),
            [
                {
                    "id": uid,
                    "email": f"rep{n:04d}@example.com",
                    "password_hash": "!",
                    "name": f"Rep {n}",
                    "timezone": zone,
                }
                for n, (uid, zone) in enumerate(others)
            ],
        )
    if backend == "sqlite":
        # The loader writes instants as text itself: it must be the very text the app writes.
        stamp = datetime(2024, 3, 10, 9, 0, tzinfo=UTC)
        written = users.c.created_at.type.dialect_impl(engine.dialect).bind_processor(
            engine.dialect
        )(stamp)
        assert written == SqliteLoader.instant(_naive(stamp)), written
    engine.dispose()
    loader: SqliteLoader | PgLoader = (
        PgLoader(url) if backend == "postgresql" else SqliteLoader(sa.make_url(url).database)
    )
    for table, rows in generate(spec, measured_id, others):
        if rows:
            loader.write(table, rows)
    counts = {t: loader.scalar(f"SELECT count(*) FROM {t}") for t in TABLES[:4]}
    orphans = loader.scalar(
        "SELECT (SELECT count(*) FROM touches t LEFT JOIN clients c ON c.id = t.client_id"
        " WHERE c.id IS NULL) + (SELECT count(*) FROM callbacks b LEFT JOIN clients c"
        " ON c.id = b.client_id WHERE c.id IS NULL) + (SELECT count(*) FROM clients c"
        " LEFT JOIN users u ON u.id = c.user_id WHERE u.id IS NULL)"
    )
    assert orphans == 0, f"{orphans} rows point nowhere"
    loader.close()
    counts["seconds"] = round(time.perf_counter() - started, 1)
    return counts


@dataclass
class Copies:
    """The kept (or just built) databases of one engine, and working copies of them."""

    engine: str
    pg: str | None
    cache_dir: Path
    keep: bool
    reuse: bool
    made: list[Callable[[], None]] = field(default_factory=list)

    def base(self, spec: Spec) -> tuple[str, dict[str, Any] | None]:
        """The base database for ``spec``: reused when asked and still valid, else built."""
        fp = spec.fingerprint()
        if self.engine == "sqlite":
            path = self.cache_dir / f"today-{spec.size}-{fp}.db"
            url = f"sqlite:///{path}"
            if self.reuse and path.exists():
                return url, None
            for old in self.cache_dir.glob(f"today-{spec.size}-*.db*"):
                old.unlink()
            counts = build(url, spec)
            if not (self.keep or self.reuse):
                self.made.append(lambda: path.unlink(missing_ok=True))
            return url, counts
        assert self.pg is not None
        name = f"{PG_PREFIX}_{spec.size}_base"
        url = _pg_url(self.pg, name)
        with _admin(self.pg) as admin:
            row = admin.execute(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                (name,),
            ).fetchone()
            if self.reuse and row is not None and row[0] == fp:
                return url, None
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {name}")
        counts = build(url, spec)
        with _admin(self.pg) as admin:
            admin.execute(f"COMMENT ON DATABASE {name} IS '{fp}'")
        if not (self.keep or self.reuse):
            self.made.append(lambda: self._drop(name))
        return url, counts

    def work(self, base_url: str, size: str) -> str:
        """A working copy of ``base_url``, removed by ``cleanup``."""
        if self.engine == "sqlite":
            base = Path(sa.make_url(base_url).database)
            path = Path(tempfile.mkdtemp(prefix="touchbase-today-")) / f"{size}.db"
            shutil.copyfile(base, path)
            self.made.append(lambda: shutil.rmtree(path.parent, ignore_errors=True))
            return f"sqlite:///{path}"
        assert self.pg is not None
        name = f"{PG_PREFIX}_{size}"
        with _admin(self.pg) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {name} TEMPLATE {sa.make_url(base_url).database}")
        self.made.append(lambda: self._drop(name))
        return _pg_url(self.pg, name)

    def size_of(self, url: str) -> str:
        if self.engine == "sqlite":
            return f"{os.path.getsize(sa.make_url(url).database) / 2**20:,.0f} MB"
        with _admin(self.pg) as admin:
            size = admin.execute(
                "SELECT pg_database_size(%s)", (sa.make_url(url).database,)
            ).fetchone()[0]
        return f"{size / 2**20:,.0f} MB"

    def _drop(self, name: str) -> None:
        with _admin(self.pg) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def cleanup(self) -> None:
        while self.made:
            self.made.pop()()


# ---------------------------------------------------------------------------------------------
# Timing


class Side:
    """One database: its app, the measured rep logged in, and the three things timed."""

    def __init__(self, size: str, url: str, pragmas: list[str]) -> None:
        self.size = size
        self.url = url
        self.app = create_app({"DATABASE_URL": url, **APP_CONFIG})
        self.engine: sa.Engine = self.app.extensions["sqlalchemy"].engine
        self.backend = self.engine.dialect.name
        if pragmas and self.backend == "sqlite":

            @sa.event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                for pragma in pragmas:
                    dbapi_conn.execute(f"PRAGMA {pragma}")

        self.rep = Rep(self.app.test_client(), {"email": EMAIL}, "")
        self.rep.login()
        self.user = self.rep.get("/me").json
        assert "id" in self.user, self.user
        # The rep as a request sees them (the session's lookup), for timing the service alone.
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(users).where(users.c.id == self.user["id"])).one()
        self.current = CurrentUser.of(row, session_id="")
        self.statements: list[tuple[str, Any]] = []
        self.per_statement: list[list[float]] = []
        self._capturing = False
        sa.event.listen(self.engine, "before_cursor_execute", self._capture)

    def _capture(self, _conn, _cursor, statement, parameters, _context, executemany) -> None:
        if self._capturing:
            assert not executemany
            self.statements.append((statement, parameters))

    def capture(self) -> dict[str, Any]:
        """One request with the listener on: its statements are what ``sql`` replays."""
        self.statements = []
        self._capturing = True
        try:
            answer = self.request()
        finally:
            self._capturing = False
        self.per_statement = [[] for _ in self.statements]
        return answer

    def request(self) -> dict[str, Any]:
        resp = self.rep.get("/today")
        assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
        return resp.json

    def service(self) -> None:
        with self.app.test_request_context("/api/v1/today"):
            today.today_for(db.session, self.current)

    def sql(self) -> None:
        """The captured statements again, each timed (``per_statement``, ms)."""
        raw = self.engine.raw_connection()
        try:
            cur = raw.cursor()
            if self.backend == "sqlite":
                cur.execute("BEGIN")
            for n, (statement, params) in enumerate(self.statements):
                start = time.perf_counter()
                cur.execute(statement, params)
                cur.fetchall()
                self.per_statement[n].append((time.perf_counter() - start) * 1000)
            raw.rollback()
        finally:
            raw.close()

    def reset(self) -> None:
        """New connections (after ANALYZE, so the planner sees the statistics)."""
        self.engine.dispose()

    def close(self) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._capture)
        self.engine.dispose()


SUBJECTS = ("request", "service", "sql")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def time_sides(small: Side, large: Side, runs: int, warmup: int) -> dict[str, Any]:
    """``runs`` rounds in ABBA order; every subject's wall and CPU times in ms, per side.

    The CPU time is this process's: on a shared machine it is less noisy than the wall time,
    which also measures the wait for a core (on PostgreSQL, the server's work is not in it).
    """
    sides = (small, large)
    for _ in range(warmup):
        for side in sides:
            side.request()
            side.service()
            side.sql()
    times = {
        side.size: {n: [] for name in SUBJECTS for n in (name, f"{name} cpu")} for side in sides
    }
    for side in sides:
        side.per_statement = [[] for _ in side.statements]
    gc.collect()
    for n in range(runs):
        for side in sides if n % 2 == 0 else sides[::-1]:
            for name in SUBJECTS:
                call = getattr(side, name)
                start, cpu = time.perf_counter(), time.process_time()
                call()
                times[side.size][name].append((time.perf_counter() - start) * 1000)
                times[side.size][f"{name} cpu"].append((time.process_time() - cpu) * 1000)
    return times


# ---------------------------------------------------------------------------------------------
# Plans


def _short_sql(statement: str) -> str:
    """The statement with long IN lists folded (one placeholder per id)."""
    text = " ".join(statement.split())
    text = re.sub(r"\((?:\?, ){3,}\?\)", lambda m: f"(?, ... {m.group(0).count('?')} values)", text)
    return re.sub(
        r"\((?:%\(\w+\)s, ){3,}%\(\w+\)s\)",
        lambda m: f"(%(id)s, ... {m.group(0).count('%(')} values)",
        text,
    )


def sqlite_plan(side: Side, statement: str, params: Any) -> dict[str, Any]:
    """EXPLAIN QUERY PLAN as a tree, and the VM steps of running the statement once."""
    raw = side.engine.raw_connection()
    try:
        conn = raw.driver_connection
        rows = conn.execute("EXPLAIN QUERY PLAN " + statement, params).fetchall()
        depth = {0: -1}
        lines = []
        for node, parent, _, detail in rows:
            depth[node] = depth.get(parent, -1) + 1
            lines.append("  " * depth[node] + detail)
        steps = [0]

        def count() -> int:
            steps[0] += 1
            return 0

        conn.set_progress_handler(count, 1)
        try:
            conn.execute(statement, params).fetchall()
        finally:
            conn.set_progress_handler(None, 1)
    finally:
        raw.close()
    scans = [
        line.strip()
        for line in lines
        if line.strip().startswith("SCAN ") and "CONSTANT ROW" not in line
    ]
    return {"plan": lines, "steps": steps[0], "scans": scans}


def _pg_literal(value: Any, conn: psycopg.Connection) -> str:
    return pgsql.Literal(value).as_string(conn)


def pg_plan(side: Side, statement: str, params: dict[str, Any]) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS): first run, and as a prepared statement in steady state."""
    raw = side.engine.raw_connection()
    try:
        conn = raw.driver_connection
        first = [r[0] for r in conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)]
        names: list[str] = []

        def number(match: re.Match) -> str:
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        prepared = re.sub(r"%\((\w+)\)s", number, statement).replace("%%", "%")
        args = ", ".join(_pg_literal(params[name], conn) for name in names)
        conn.execute(f"PREPARE bench_today AS {prepared}")
        try:
            for _ in range(6):
                conn.execute(f"EXECUTE bench_today({args})").fetchall()
            steady = [
                r[0]
                for r in conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_today({args})")
            ]
        finally:
            conn.execute("DEALLOCATE bench_today")
        conn.rollback()
    finally:
        raw.close()
    return {"plan": first, "steady": steady, **_pg_facts(steady)}


def _pg_facts(plan: list[str]) -> dict[str, Any]:
    """Buffers of the top node, rows filtered away (times loops), sequential scans."""
    buffers = 0
    for line in plan:
        if "Buffers:" in line:
            buffers = sum(int(n) for n in re.findall(r"(?:hit|read)=(\d+)", line))
            break
    removed = 0
    loops = 1
    for line in plan:
        found = re.search(r"loops=(\d+)\)", line)
        if found:
            loops = int(found.group(1))
        found = re.search(r"Rows Removed by (?:Filter|Index Recheck): (\d+)", line)
        if found:
            removed += int(found.group(1)) * loops
    scans = [line.strip() for line in plan if "Seq Scan" in line]
    generic = any(re.search(r"\$\d", line) for line in plan)
    return {"buffers": buffers, "removed": removed, "scans": scans, "generic": generic}


_FIGURES = ("Planning", "Execution", "Buffers", "Heap Blocks", "Heap Fetches", "Rows Removed")


def _shape(plan: list[str]) -> list[str]:
    """A plan without its figures and values, to tell whether two plans are the same plan."""
    out = []
    for line in plan:
        if line.strip().startswith(_FIGURES):
            continue
        line = re.sub(r"\s*\(cost=.*$", "", line)
        # A value, or a parameter, with its cast: 'x'::text and ($1)::text are both "?".
        out.append(re.sub(r"(?:'[^']*'|\(\$\d+\)|\$\d+)(?:::[a-z ]+)?", "?", line).rstrip())
    return out


def plans(side: Side) -> list[dict[str, Any]]:
    out = []
    for statement, params in side.statements:
        explain = sqlite_plan if side.backend == "sqlite" else pg_plan
        out.append({"sql": _short_sql(statement), **explain(side, statement, params)})
    return out


# ---------------------------------------------------------------------------------------------
# The run


@dataclass
class Phase:
    engine: str
    analyzed: bool
    times: dict[str, Any]
    statements: dict[str, int]
    plans: dict[str, list[dict[str, Any]]]
    load: tuple[float, float, float]
    items: int
    rep: dict[str, int]


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def analyze(side: Side) -> None:
    if side.backend == "sqlite":
        conn = sqlite3.connect(sa.make_url(side.url).database, isolation_level=None)
        conn.execute("ANALYZE")
        conn.close()
    else:
        with psycopg.connect(_libpq(side.url), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
    side.reset()


def measured_rep(side: Side) -> dict[str, int]:
    """What the measured rep holds (read from one side: both hold the same)."""
    user_id, cb = side.user["id"], callbacks.c

    def count(table: sa.Table, *where: Any) -> sa.Select:
        return (
            sa.select(sa.func.count()).select_from(table).where(table.c.user_id == user_id, *where)
        )

    queries = {
        "clients": count(clients),
        "archived": count(clients, clients.c.archived_at.is_not(None)),
        "touches": count(touches),
        "promises kept": count(callbacks, cb.status == "done"),
        "open": count(callbacks, cb.status == "open"),
        "open, overdue": count(callbacks, cb.status == "open", cb.due_at < datetime.now(UTC)),
        "cancelled": count(callbacks, cb.status == "cancelled"),
    }
    with side.engine.connect() as conn:
        return {name: conn.execute(query).scalar_one() for name, query in queries.items()}


def run_phase(
    small: Side, large: Side, analyzed: bool, rep: dict[str, int], args: argparse.Namespace
) -> Phase:
    answers = {side.size: side.capture() for side in (small, large)}
    assert answers["small"] == answers["large"], "the measured rep's answers differ"
    times = time_sides(small, large, args.runs, args.warmup)
    load = os.getloadavg()
    for side in (small, large):
        times[side.size]["statements"] = [statistics.median(t) for t in side.per_statement]
        side.capture()  # the statements again, warm, for the plans
    phase = Phase(
        engine=small.backend,
        analyzed=analyzed,
        times=times,
        statements={s.size: len(s.statements) for s in (small, large)},
        plans={s.size: plans(s) for s in (small, large)},
        load=load,
        items=len(answers["small"]["items"]),
        rep=rep,
    )
    report(phase, answers["small"], args)
    return phase


def figures(phase: Phase, name: str) -> dict[str, float]:
    """Medians and p95 of one subject, small and large, and their ratios (large / small)."""
    out = {}
    for size in ("small", "large"):
        out[size] = statistics.median(phase.times[size][name])
        out[f"{size} p95"] = percentile(phase.times[size][name], 0.95)
        out[f"{size} cpu"] = statistics.median(phase.times[size][f"{name} cpu"])
    for key in ("", " p95", " cpu"):
        out[f"ratio{key}"] = out[f"large{key}"] / out[f"small{key}"]
    return out


def _state(phase: Phase) -> str:
    if not phase.analyzed:
        return "no ANALYZE (as loaded)"
    return "after VACUUM ANALYZE" if phase.engine == "postgresql" else "after ANALYZE"


def report(phase: Phase, answer: dict[str, Any], args: argparse.Namespace) -> None:
    reasons: dict[str, int] = {}
    for item in answer["items"]:
        key = item["reason"] + (" overdue" if item["overdue"] else "")
        reasons[key] = reasons.get(key, 0) + 1
    print(f"\n  {phase.engine}, {_state(phase)}: today's list {phase.items} items {reasons}")
    print(
        f"  statements per request: small {phase.statements['small']}, "
        f"large {phase.statements['large']}"
    )
    for name in SUBJECTS:
        f = figures(phase, name)
        verdict = ""
        if name == "request":
            verdict = "  goal met" if f["ratio"] <= GOAL else "  GOAL NOT MET"
        print(
            f"    {name:8s} small median {f['small']:7.2f} p95 {f['small p95']:7.2f} | large "
            f"median {f['large']:7.2f} p95 {f['large p95']:7.2f} ms | ratio {f['ratio']:5.3f} "
            f"(p95 {f['ratio p95']:5.3f}){verdict}\n"
            f"             CPU here: small {f['small cpu']:7.2f} | large {f['large cpu']:7.2f} ms"
            f" | ratio {f['ratio cpu']:5.3f}"
        )
    print(
        f"    ({args.runs} rounds, ABBA; load average {' '.join(f'{x:.2f}' for x in phase.load)})"
    )
    for n, (s, big) in enumerate(zip(phase.plans["small"], phase.plans["large"], strict=True)):
        what = re.sub(r"^SELECT .*? FROM ", "", s["sql"])[:60]
        ms, ml = phase.times["small"]["statements"][n], phase.times["large"]["statements"][n]
        what += f" | median small {ms:.2f} ms, large {ml:.2f} ms"
        if phase.engine == "sqlite":
            access = "; ".join(line.strip() for line in big["plan"] if "SEARCH" in line)[:110]
            flag = "".join(
                f" SCAN ({size}): " + "; ".join(p["scans"])
                for size, p in (("small", s), ("large", big))
                if p["scans"]
            )
            print(
                f"    [{n + 1}] {what}\n        VM steps small {s['steps']:,} large "
                f"{big['steps']:,}{' (same)' if s['steps'] == big['steps'] else ' DIFFER'}"
                f" | {access}{flag}"
            )
        else:
            flag = "".join(
                f" SEQ SCAN ({size}): " + "; ".join(p["scans"])
                for size, p in (("small", s), ("large", big))
                if p["scans"]
            )
            same = _shape(big["plan"]) == _shape(big["steady"])
            changed = "" if same else " (not the first-run plan)"
            print(
                f"    [{n + 1}] {what}\n        buffers small {s['buffers']:,} large "
                f"{big['buffers']:,} | rows filtered away small {s['removed']:,} large "
                f"{big['removed']:,} | steady-state plan "
                f"{'generic' if big['generic'] else 'custom'}{changed}{flag}"
            )


def run_engine(engine: str, args: argparse.Namespace, pg: str | None) -> list[Phase]:
    cut = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    common = {
        "clients": args.clients,
        "touches": args.touches,
        "other_clients": args.other_clients,
        "other_touches": args.other_touches,
        "cut": cut,
    }
    specs = [Spec("small", args.small_reps, **common), Spec("large", args.large_reps, **common)]
    copies = Copies(engine, pg, Path(args.cache_dir), args.keep, args.reuse)
    phases: list[Phase] = []
    sides: list[Side] = []
    try:
        urls = {}
        for spec in specs:
            url, counts = copies.base(spec)
            how = f"built in {counts.pop('seconds')} s: {counts}" if counts else "reused"
            print(f"  {engine} {spec.size} ({spec.reps} reps): {how}; {copies.size_of(url)}")
            urls[spec.size] = copies.work(url, spec.size)
        for sql in args.index:
            for url in urls.values():
                eng = sa.create_engine(url)
                with eng.begin() as conn:
                    conn.exec_driver_sql(sql)
                eng.dispose()
            print(f"  made by hand on both copies: {sql}")
        if args.sqlite_pragma and engine == "sqlite":
            print(f"  on every app connection: PRAGMA {'; PRAGMA '.join(args.sqlite_pragma)}")
        sides = [Side(size, url, args.sqlite_pragma) for size, url in urls.items()]
        rep = measured_rep(sides[1])
        print(f"  the measured rep: {rep}")
        if args.analyze in ("off", "both"):
            phases.append(run_phase(*sides, analyzed=False, rep=rep, args=args))
        if args.analyze in ("on", "both"):
            for side in sides:
                analyze(side)
            phases.append(run_phase(*sides, analyzed=True, rep=rep, args=args))
    finally:
        for side in sides:
            side.close()
        copies.cleanup()
    return phases


def write_plans(path: Path, phases: list[Phase], args: argparse.Namespace) -> None:
    """docs/query-plans-today.md: the figures, then every statement of GET /today and its plans."""
    pg_version = _pg_version(phases)
    out = [
        "# Query plans of GET /api/v1/today",
        "",
        "Generated by `bench/today_scale.py --write-plans` (do not edit by hand) on "
        f"{datetime.now(UTC):%Y-%m-%d}: SQLite {sqlite3.sqlite_version}"
        + (f", PostgreSQL {pg_version}" if pg_version else "")
        + f", {args.runs} rounds.",
        "",
        f"The measured rep: {args.clients:,} clients, {args.touches:,} touches over two years, "
        f'the same in both databases. "small": {args.small_reps} reps, "large": '
        f"{args.large_reps} reps; every other rep has {args.other_clients[0]}-"
        f"{args.other_clients[1]} clients and {args.other_touches[0]}-{args.other_touches[1]} "
        "touches per client. Ratio = large / small (goal: at most 1.2 for the request).",
        "",
        *(
            f"The measured rep in the {engine} databases: {rep}."
            for engine, rep in {p.engine: p.rep for p in phases}.items()
        ),
        "",
        "| engine | statistics | statements per request | items | request median small / "
        "large (ms) | ratio | CPU ratio | SQL alone small / large (ms) | ratio | load average |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for phase in phases:
        req, sql = figures(phase, "request"), figures(phase, "sql")
        out.append(
            f"| {phase.engine} | {_state(phase)} | {phase.statements['large']} | {phase.items} "
            f"| {req['small']:.1f} / {req['large']:.1f} | **{req['ratio']:.2f}** "
            f"| {req['ratio cpu']:.2f} | {sql['small']:.1f} / {sql['large']:.1f} "
            f"| {sql['ratio']:.2f} | {' '.join(f'{x:.1f}' for x in phase.load)} |"
        )
    out += [
        "",
        "SQLite: `EXPLAIN QUERY PLAN`, and the virtual machine steps of one run of the "
        "statement: the same count in both databases means no other rep's row was visited. "
        "PostgreSQL: `EXPLAIN (ANALYZE, BUFFERS)` of the statement as the app runs it in steady "
        "state: prepared by psycopg after five runs, when PostgreSQL may switch to a generic plan "
        "(`$1` in the plan); the first-run (custom) plan is shown too when it is another plan. "
        "The plans are the large database's; the small one's are shown where they differ.",
        "",
    ]
    shown: set[tuple[str, str]] = set()
    for phase in phases:
        out += [f"## {phase.engine}, {_state(phase)}", ""]
        for n, (small, large) in enumerate(
            zip(phase.plans["small"], phase.plans["large"], strict=True)
        ):
            ms, ml = (phase.times[size]["statements"][n] for size in ("small", "large"))
            out += [
                f"### {n + 1}. {re.sub(r'^SELECT .*? FROM ', '', large['sql'])[:70]}",
                "",
            ]
            if (phase.engine, large["sql"]) not in shown:
                shown.add((phase.engine, large["sql"]))
                out += ["```sql", large["sql"], "```", ""]
            if phase.engine == "sqlite":
                out += [
                    f"VM steps: small {small['steps']:,}, large {large['steps']:,}. Median time "
                    f"(SQL alone): small {ms:.2f} ms, large {ml:.2f} ms.",
                    "",
                    "```",
                    *large["plan"],
                    "```",
                    "",
                ]
                if small["plan"] != large["plan"]:
                    out += ["Small database:", "", "```", *small["plan"], "```", ""]
                continue
            out += [
                f"Buffers (top node, steady state): small {small['buffers']:,}, large "
                f"{large['buffers']:,}; rows filtered away: small {small['removed']:,}, large "
                f"{large['removed']:,}. Median time (SQL alone): small {ms:.2f} ms, large "
                f"{ml:.2f} ms.",
                "",
                "```",
                *(_cut(line, 160) for line in large["steady"]),
                "```",
                "",
            ]
            if _shape(large["plan"]) != _shape(large["steady"]):
                out += ["First run (custom plan):", "", "```"]
                out += [*(_cut(line, 160) for line in large["plan"]), "```", ""]
            if _shape(small["steady"]) != _shape(large["steady"]):
                out += ["Small database (steady state):", "", "```"]
                out += [*(_cut(line, 160) for line in small["steady"]), "```", ""]
    path.write_text("\n".join(out).rstrip() + "\n")
    print(f"\nplans written to {path}")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _pg_version(phases: list[Phase]) -> str | None:
    pg = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if not pg or not any(p.engine == "postgresql" for p in phases):
        return None
    with _admin(pg) as admin:
        return admin.execute("SHOW server_version").fetchone()[0]


def _range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    return int(low), int(high or low)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--clients", type=int, default=2000, help="the measured rep's")
    parser.add_argument("--touches", type=int, default=50_000, help="the measured rep's")
    parser.add_argument("--small-reps", type=int, default=10, help="reps in small, all told")
    parser.add_argument("--large-reps", type=int, default=1000, help="reps in large, all told")
    parser.add_argument("--other-clients", type=_range, default=(100, 200), metavar="MIN-MAX")
    parser.add_argument(
        "--other-touches", type=_range, default=(20, 25), metavar="MIN-MAX", help="per client"
    )
    parser.add_argument("--engine", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--analyze", choices=("off", "on", "both"), default="both")
    parser.add_argument("--keep", action="store_true", help="keep the built databases")
    parser.add_argument("--reuse", action="store_true", help="use kept databases (and keep)")
    parser.add_argument(
        "--cache-dir", default=os.path.join(tempfile.gettempdir(), "touchbase-today-scale")
    )
    parser.add_argument("--index", action="append", default=[], metavar="SQL")
    parser.add_argument(
        "--sqlite-pragma",
        action="append",
        default=[],
        metavar="PRAGMA",
        help="e.g. mmap_size=1073741824: run on each of the app's SQLite connections, to try it",
    )
    parser.add_argument(
        "--write-plans",
        nargs="?",
        const=str(ROOT / "docs" / "query-plans-today.md"),
        metavar="PATH",
    )
    args = parser.parse_args()
    Path(args.cache_dir).mkdir(parents=True, exist_ok=True)
    os.environ["TOUCHBASE_INSTANCE_PATH"] = tempfile.mkdtemp(prefix="touchbase-today-instance-")
    print(f"python {sys.version.split()[0]}; cores {os.cpu_count()}; load {_load()}")
    pg = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    engines = ["sqlite", "postgresql"] if args.engine == "both" else [args.engine]
    if "postgresql" in engines and not pg:
        if args.engine == "postgresql":
            raise SystemExit("set TEST_DATABASE_URL to measure PostgreSQL")
        print("PostgreSQL: set TEST_DATABASE_URL to measure it too")
        engines.remove("postgresql")
    phases: list[Phase] = []
    for engine in engines:
        print(f"\n{engine}:")
        phases += run_engine(engine, args, pg)
    print(f"\nload at the end: {_load()}")
    if args.write_plans:
        write_plans(Path(args.write_plans), phases, args)


if __name__ == "__main__":
    main()
