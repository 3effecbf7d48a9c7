"""Dispatcher benchmarks, each against a baseline measured in the same run.

    .venv/bin/python bench/dispatch.py            # SQLite (a temporary file)
    TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \
        .venv/bin/python bench/dispatch.py   # adds 1 vs 2 dispatcher processes

1. Throughput: the dispatcher (claim a batch, build payloads, send, record) against a bare loop of
   pywebpush ``webpush()`` calls to the same fake push service, the same number of pushes.
   Both send one push at a time (``--concurrency 1``); the goal is a ratio of at least 0.8.
   The dispatcher's default concurrency is shown too.
2. Scale-out (PostgreSQL only): one ``flask dispatch --once`` process against two, over the same
   number of due callbacks. Push services answer in tens of milliseconds, so here the fake one
   waits ``--latency`` before answering. Rate is counted from the first push to the last one, so
   process start-up is left out. Goal: at least 1.6x.
3. Due-to-sent latency: callbacks falling due over a few seconds while a dispatcher loop runs
   (interval 1 s); p50 and p99 of (push received - due_at).
4. Morning digests: reps whose digest is due now (20 clients each), one pass of
   ``send_summaries`` (today's list of each rep, the lease, the send, the "sent" date), against
   the same bare loop: what a digest costs beyond its push.

The fake push service (tests/push/fake_service.py) runs in this process and decrypts and checks
every push, as in the tests; its CPU cost is part of every figure, baseline included.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from py_vapid import Vapid  # noqa: E402
from pywebpush import webpush  # noqa: E402

from tests.push.fake_service import (  # noqa: E402
    FakePushService,
    seed_digest_reps,
    seed_due_callbacks,
)
from webapp import create_app  # noqa: E402
from webapp.db import Base  # noqa: E402
from webapp.dispatch import Dispatcher  # noqa: E402
from webapp.extensions import alembic  # noqa: E402
from webapp.models import new_id, utcnow  # noqa: E402
from webapp.services.push import TTL, topic  # noqa: E402

REPS = 50
TABLES = ", ".join(t.name for t in reversed(Base.metadata.sorted_tables))


def make_database(pg: str | None) -> tuple[str, Callable[[], None]]:
    """A migrated, empty database: a schema of our own on PostgreSQL, or a temporary SQLite file."""
    if pg:
        schema = f"touchbase_bench_{os.getpid()}"
        admin = sa.create_engine(pg)
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        sep = "&" if "?" in pg else "?"
        url = f"{pg}{sep}options=-csearch_path%3D{schema}"

        def drop() -> None:
            with admin.begin() as conn:
                conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            admin.dispose()

        return url, drop
    folder = tempfile.mkdtemp(prefix="touchbase-bench-")
    return f"sqlite:///{folder}/bench.db", lambda: None


def empty(app) -> None:
    engine = app.extensions["sqlalchemy"].engine
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(f"TRUNCATE {TABLES} CASCADE")
        else:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())


def seed(app, service: FakePushService, count: int, *, due_from=None, spread: float = 0.0):
    """``count`` callbacks over ``REPS`` reps with one browser each; return rows and subscribers."""
    empty(app)
    return seed_due_callbacks(app, service, count, reps=REPS, due_from=due_from, spread=spread)


def bare_loop(app, service: FakePushService, subs, count: int) -> float:
    """pywebpush's own one-call API in a loop, set up as carefully as pywebpush allows."""
    session = requests.Session()
    vapid = Vapid.from_pem(app.config["VAPID_PRIVATE_KEY"].encode())
    payload = '{"title":"Call Client 1","body":"You said you\'d call back Thursday 9:00"}'
    start = time.perf_counter()
    for n in range(count):
        sub = subs[n % len(subs)]
        webpush(
            sub.subscription(),
            payload,
            vapid_private_key=vapid,
            vapid_claims={"sub": app.config["VAPID_SUBJECT"]},  # a fresh dict: it is mutated
            ttl=TTL,
            timeout=10,
            headers={"Urgency": "high", "Topic": topic(new_id())},
            requests_session=session,
        )
    return count / (time.perf_counter() - start)


def dispatcher_rate(app, service, count: int, concurrency: int) -> float:
    seed(app, service, count)
    dispatcher = Dispatcher(app, concurrency=concurrency)
    before = len(service.accepted())
    start = time.perf_counter()
    stats = dispatcher.run_once()
    elapsed = time.perf_counter() - start
    dispatcher.close()
    assert stats.notified == count and len(service.accepted()) - before == count, stats
    return count / elapsed


def digest_rate(app, service, reps: int, concurrency: int) -> float:
    """Reps' digests per second in one pass, all due now (UTC reps, digest a minute ago)."""
    empty(app)
    at = f"{utcnow() - timedelta(minutes=1):%H:%M}"
    seed_digest_reps(app, service, reps, "UTC", at, clients=20)
    dispatcher = Dispatcher(app, concurrency=concurrency)
    start = time.perf_counter()
    stats = dispatcher.send_summaries()
    elapsed = time.perf_counter() - start
    dispatcher.close()
    assert stats.digests == reps, stats
    return reps / elapsed


def processes_rate(app, service, env, count: int, procs: int, concurrency: int) -> float:
    seed(app, service, count)
    before = len(service.pushes)
    command = [sys.executable, "-m", "flask", "--app", "webapp", "dispatch", "--once"]
    command += ["--concurrency", str(concurrency)]
    running = [subprocess.Popen(command, cwd=ROOT, env=env) for _ in range(procs)]
    for proc in running:
        proc.wait()
    pushes = service.pushes[before:]
    assert len(pushes) == count, (len(pushes), count)
    times = sorted(p.at for p in pushes)
    return (count - 1) / (times[-1] - times[0])


def latency(app, service, count: int, spread: float, interval: float) -> list[float]:
    due_from = utcnow() + timedelta(seconds=1)
    rows, _subs = seed(app, service, count, due_from=due_from, spread=spread)
    due = {row["id"]: row["due_at"].timestamp() for row in rows}
    before = len(service.pushes)
    dispatcher = Dispatcher(app)
    loop = threading.Thread(target=dispatcher.run_forever, args=(interval,), daemon=True)
    loop.start()
    deadline = time.time() + spread + 10 * interval + 5
    while len(service.pushes) - before < count and time.time() < deadline:
        time.sleep(0.05)
    dispatcher.stop.set()
    loop.join()
    dispatcher.close()
    return sorted(p.at - due[p.payload["callback_id"]] for p in service.pushes[before:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pushes", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.02, help="fake service delay (s)")
    args = parser.parse_args()
    pg = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    url, drop = make_database(pg)
    instance = tempfile.mkdtemp(prefix="touchbase-bench-instance-")
    os.environ["TOUCHBASE_INSTANCE_PATH"] = instance
    try:
        with FakePushService(None) as service:
            config = {"DATABASE_URL": url, "PUSH_ORIGINS": service.origin, "SECRET_KEY": "bench"}
            app = create_app(config)
            service.vapid_public_key = app.extensions["touchbase_push"]["public_key"]
            with app.app_context():
                alembic.upgrade()
            backend = app.extensions["sqlalchemy"].engine.dialect.name
            print(f"database: {backend}; cores: {os.cpu_count()}; pushes per run: {args.pushes}")

            _rows, subs = seed(app, service, 10)
            bare_loop(app, service, subs, 50)  # warm up connections and imports
            base = bare_loop(app, service, subs, args.pushes)
            one = dispatcher_rate(app, service, args.pushes, concurrency=1)
            many = dispatcher_rate(app, service, args.pushes, concurrency=8)
            print(f"bare pywebpush loop:          {base:7.0f} pushes/s")
            print(f"dispatcher, one at a time:    {one:7.0f} pushes/s   ratio {one / base:.2f}")
            print(f"dispatcher, 8 in flight:      {many:7.0f} pushes/s   ratio {many / base:.2f}")
            if utcnow().hour == 0 and utcnow().minute < 2:
                time.sleep(120)  # the digests below are "a minute ago", on today's clock
            reps = max(args.pushes // 5, 10)
            digest_one = digest_rate(app, service, reps, concurrency=1)
            digest_many = digest_rate(app, service, reps, concurrency=8)
            print(
                f"digests ({reps} reps), one at a time: {digest_one:5.0f} reps/s   "
                f"ratio {digest_one / base:.2f}"
            )
            print(
                f"digests ({reps} reps), 8 in flight:   {digest_many:5.0f} reps/s   "
                f"ratio {digest_many / base:.2f}"
            )

            if backend == "postgresql":
                env = {
                    **os.environ,
                    "TOUCHBASE_DATABASE_URL": url,
                    "TOUCHBASE_PUSH_ORIGINS": service.origin,
                }
                service.delay = args.latency
                count = args.pushes * 2
                single = processes_rate(app, service, env, count, procs=1, concurrency=4)
                double = processes_rate(app, service, env, count, procs=2, concurrency=4)
                service.delay = 0
                print(
                    f"1 dispatcher process:         {single:7.0f} pushes/s "
                    f"(push service answers after {args.latency * 1000:.0f} ms, 4 in flight)"
                )
                print(
                    f"2 dispatcher processes:       {double:7.0f} pushes/s   x{double / single:.2f}"
                )
            else:
                print("1 vs 2 dispatchers: PostgreSQL only (set TEST_DATABASE_URL)")

            interval = 1.0
            waits = latency(app, service, 200, spread=5.0, interval=interval)
            p50 = statistics.median(waits)
            p99 = waits[min(len(waits) - 1, int(len(waits) * 0.99))]
            print(
                f"due-to-sent latency (interval {interval:.0f} s, {len(waits)} callbacks due "
                f"over 5 s): p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"
            )
            assert service.errors == [], service.errors[:3]
            app.extensions["sqlalchemy"].engine.dispose()
    finally:
        drop()


if __name__ == "__main__":
    main()
