"""A big rep's whole-account export (GET /export/account.json) and account deletion (DELETE /me).

    .venv/bin/python bench/account_privacy.py [--clients 2000] [--touches 50000]
    TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \
        .venv/bin/python bench/account_privacy.py

Two reps of the same size: 2,000 clients and 50,000 calls over two years each, with their
promises (the same data as bench/stats.py, written in bulk; the second rep is a copy of the first
under other ids), so the database holds another rep's 50,000 calls too, as it would.

Export, through the Flask test client, logged in, reading the streamed answer chunk by chunk
(as a phone downloading it would), best of ``--repeat`` runs: wall and CPU time, the size, the
number of chunks, and, in one more run with tracemalloc on, the peak of Python allocations while
the whole answer went through. Beside it, for scale: the peak of holding the same document
parsed (``json.loads`` of the answer), which is what building the answer in one piece would
have cost at least. Goal (issue 7): the export streams, so its peak stays far below that.

Deletion: DELETE /me with the password for the first rep: wall time, then the second rep's rows
counted, unchanged. It runs on SQLite (a temporary file) and, when TEST_DATABASE_URL is set, on
PostgreSQL too, in a schema of its own that is dropped afterwards.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import sqlalchemy as sa  # noqa: E402
from dispatch import make_database  # noqa: E402
from stats import ZONE, analyze, seed  # noqa: E402

from tests.conftest import PASSWORD, register_rep  # noqa: E402
from webapp import create_app  # noqa: E402
from webapp.extensions import alembic  # noqa: E402
from webapp.models import callbacks, clients, touches  # noqa: E402

ID_COLUMNS = ("id", "client_id", "touch_id", "callback_id")


def copy_rep(app, source: str, target: str) -> None:
    """Copy every client, call and promise of ``source`` to ``target``, under new ids."""
    engine = app.extensions["sqlalchemy"].engine
    with engine.begin() as conn:
        for table in (clients, touches, callbacks):
            exprs = []
            for column in table.c:
                if column.name == "user_id":
                    exprs.append(sa.literal(target).label("user_id"))
                elif column.name in ID_COLUMNS:
                    # "b" for the first character: still unique, still 36 characters.
                    exprs.append((sa.literal("b") + sa.func.substr(column, 2)).label(column.name))
                else:
                    exprs.append(column)
            query = sa.select(*exprs).where(table.c.user_id == source)
            conn.execute(sa.insert(table).from_select([c.name for c in table.c], query))


def counts(app, user_id: str) -> dict[str, int]:
    engine = app.extensions["sqlalchemy"].engine
    with engine.connect() as conn:
        return {
            table: conn.execute(
                sa.text(f"SELECT count(*) FROM {table} WHERE user_id = :u"), {"u": user_id}
            ).scalar_one()
            for table in ("clients", "touches", "callbacks", "sessions")
        }


def download(rep) -> tuple[int, int]:
    """Read the export as a stream; (bytes, chunks)."""
    answer = rep.client.get("/api/v1/export/account.json", buffered=False)
    assert answer.status_code == 200, answer.status_code
    size = chunks = 0
    try:
        for chunk in answer.response:
            size += len(chunk)
            chunks += 1
    finally:
        answer.close()
    return size, chunks


def run(url: str, args: argparse.Namespace) -> None:
    app = create_app(
        {"DATABASE_URL": url, "SECRET_KEY": "bench", "PASSWORD_HASH_METHOD": "scrypt:1024:8:1"}
    )
    with app.app_context():
        alembic.upgrade()
    backend = app.extensions["sqlalchemy"].engine.dialect.name
    rep = register_rep(app, email="bench@example.com", timezone=ZONE)
    other = register_rep(app, email="other@example.com", timezone=ZONE)
    made = seed(app, rep.user["id"], args.clients, args.touches, False)
    copy_rep(app, rep.user["id"], other.user["id"])
    if backend == "postgresql":
        analyze(app)
    print(
        f"\n{backend}: two reps, each {made['clients']} clients, {made['touches']} touches, "
        f"{made['promises']} promises"
    )

    best_wall = best_cpu = float("inf")
    size = chunks = 0
    for _ in range(args.repeat):
        gc.collect()
        wall, cpu = time.perf_counter(), time.process_time()
        size, chunks = download(rep)
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    gc.collect()
    tracemalloc.start()
    download(rep)
    _, streamed_peak = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    body = rep.get("/export/account.json").get_data()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    doc = json.loads(body)
    _, parsed_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"  export: {size / 1e6:.1f} MB in {chunks} chunks; best of {args.repeat}: "
        f"{best_wall * 1000:.0f} ms wall, {best_cpu * 1000:.0f} ms CPU here; "
        f"peak Python memory while streaming it {streamed_peak / 1e6:.1f} MB "
        f"(the document held parsed: {(parsed_peak - base) / 1e6:.1f} MB)"
    )
    assert len(doc["touches"]) == made["touches"] and len(doc["clients"]) == made["clients"]
    del doc, body

    before = counts(app, other.user["id"])
    wall = time.perf_counter()
    gone = rep.delete("/me", {"password": PASSWORD})
    took = time.perf_counter() - wall
    assert gone.status_code == 204, gone.status_code
    left = counts(app, rep.user["id"])
    assert set(left.values()) == {0}, left
    assert counts(app, other.user["id"]) == before
    load = os.getloadavg()
    print(
        f"  delete: {took * 1000:.0f} ms for all of it; nothing of the rep's left, the other "
        f"rep's {before['touches']} touches untouched "
        f"(load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})"
    )
    app.extensions["sqlalchemy"].engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--touches", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args()
    os.environ["TOUCHBASE_INSTANCE_PATH"] = tempfile.mkdtemp(prefix="touchbase-bench-instance-")
    print(f"python {sys.version.split()[0]}; cores {os.cpu_count()}; load {os.getloadavg()}")
    url, drop = make_database(None)
    run(url, args)
    pg = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if pg and not args.sqlite_only:
        url, drop = make_database(pg)
        try:
            run(url, args)
        finally:
            drop()
    else:
        print("\nPostgreSQL: set TEST_DATABASE_URL to measure it too")


if __name__ == "__main__":
    main()
