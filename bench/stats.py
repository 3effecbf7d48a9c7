"""GET /api/v1/stats for a big rep, against GET /api/v1/today for the same rep, same run.

    .venv/bin/python bench/stats.py [--runs 200] [--clients 2000] [--touches 50000]
    TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \
        .venv/bin/python bench/stats.py

One rep (America/Los_Angeles, so two DST changes a year) with 2,000 clients and 50,000 touches
over about two years: calls on business days in working hours, fewer in two holidays a year (the
streak restarts after the latest one), tier A clients called most; outcomes reached / left a
message / no answer; most unanswered calls promise a callback, which the client's next call
keeps (on time or late) and the last one leaves open; a few promises are cancelled, a few
clients archived. The derived client columns are computed from the same log, as the app would.
The rows are written with Core in bulk (the API would take minutes), then the rep logs in
through the API (tests/conftest.py ``register_rep``).

Timed through the Flask test client, logged in: the subject and the baselines alternate within
each run, so machine noise hits them alike. Baselines: GET /today (the same rep's 2,000 clients
through today's rules) and a bare Flask JSON endpoint in the same process (bench_app.py).
Goal (issue 6): /stats under 50 ms at the median on this machine. ``--long-streak`` seeds no
holidays, so the streak walks back the whole two years (the worst case for the streak reads).

It runs on SQLite (a temporary file) and, when TEST_DATABASE_URL is set, on PostgreSQL too, in a
schema of its own that is dropped afterwards (bench/dispatch.py ``make_database``).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import sqlalchemy as sa  # noqa: E402
from bench_app import BARE_PATH, create_bench_app  # noqa: E402
from dispatch import make_database  # noqa: E402

from tests.conftest import register_rep  # noqa: E402
from webapp import scheduling  # noqa: E402
from webapp.extensions import alembic  # noqa: E402
from webapp.models import callbacks, clients, touches, utcnow  # noqa: E402

ZONE = "America/Los_Angeles"
GOAL_MS = 50.0
NOTES = (
    "wants the spring catalogue",
    "asked about volume pricing",
    "new warehouse opening in March",
    "call back after the trade show",
    "happy with the last order",
    "considering a second line",
)
POINTS = ("- ask how the new warehouse is going", "Mention the loyalty discount", None, None)


def _tags(rng: random.Random) -> tuple[list[str], str | None]:
    roll = rng.random()
    tier = "A" if roll < 0.15 else "B" if roll < 0.45 else "C" if roll < 0.8 else None
    tags = [] if tier is None else [rng.choice((tier, f"tier {tier.lower()}", f"Tier:{tier}"))]
    if rng.random() < 0.3:
        tags.append(rng.choice(("wholesale", "retail", "north", "south")))
    if tier == "C" and rng.random() < 0.05:
        tags.append("B")  # two tier tags: counted in B, the shorter rhythm
    return tags, tier


def _work_days(first: date, last: date, holidays: list[tuple[date, date]]) -> list[date]:
    days = []
    day = first
    while day <= last:
        if scheduling.is_business_day(day) and not any(a <= day <= b for a, b in holidays):
            days.append(day)
        day += timedelta(days=1)
    return days


def seed(app, user_id: str, n_clients: int, n_touches: int, long_streak: bool) -> dict:
    """Write the rep's clients, touches and callbacks in bulk; return what was made.

    Day by day, oldest first: the clients promised for the day are called first (most of the
    time: a promise is sometimes kept late or not at all), then others picked by tier weight,
    until the day's share of ``n_touches``. Each call keeps the client's earlier promises (as
    services/touches.py does) and an unanswered one usually makes a new promise.
    """
    rng = random.Random(6)
    tz = ZoneInfo(ZONE)
    now = utcnow()
    today = scheduling.local_today(now, tz)
    first = today - timedelta(days=730)
    holidays: list[tuple[date, date]] = []
    if not long_streak:
        for back in (40, 200, 405, 565):  # two weeks off, twice a year; the latest 40 days ago
            end = today - timedelta(days=back)
            holidays.append((end - timedelta(days=13), end))
    days = _work_days(first, today, holidays)

    client_rows, weights = [], []
    for i in range(n_clients):
        tags, tier = _tags(rng)
        client_rows.append(
            {
                "id": f"00000000-0000-4000-8000-{i:012d}",
                "user_id": user_id,
                "name": f"Client {i:04d}",
                "phone": f"+1312555{i % 10000:04d}",
                "company": f"Company {i % 700}" if rng.random() < 0.8 else None,
                "talking_points": rng.choice(POINTS),
                "tags": tags,
                "cadence_days": rng.choice((14, 60)) if rng.random() < 0.05 else None,
                "created_at": datetime.combine(first, datetime.min.time(), UTC),
                "updated_at": now,
                "archived_at": now if rng.random() < 0.03 else None,
                "last_touch_at": None,
                "last_reached_at": None,
                "attempts_since_reached": 0,
            }
        )
        weights.append({"A": 6.0, "B": 2.0, "C": 1.0, None: 0.5}[tier])

    touch_rows: list[dict] = []
    callback_rows: list[dict] = []
    open_promise: dict[int, dict] = {}
    promised_for: dict[date, list[int]] = {}
    per_day = n_touches / len(days)
    for day_n, day in enumerate(days):
        quota = round(per_day * (day_n + 1)) - round(per_day * day_n)
        start = scheduling.at_local(day, datetime.min.time(), tz)
        times = sorted(
            start + timedelta(seconds=rng.randrange(8 * 3600, 18 * 3600)) for _ in range(quota)
        )
        if day == today:
            times = [t for t in times if t < now - timedelta(minutes=1)]
        due = [c for c in promised_for.pop(day, []) if rng.random() < 0.8]
        picks = due[: len(times)]
        picks += rng.choices(range(n_clients), weights=weights, k=len(times) - len(picks))
        rng.shuffle(picks)
        for happened, owner in zip(times, picks, strict=True):
            client = client_rows[owner]
            kept = open_promise.pop(owner, None)
            if kept is not None:
                kept.update(status="done", done_at=happened, updated_at=happened)
            outcome = rng.choices(("reached", "left_message", "no_answer"), (4, 3, 3))[0]
            n = len(touch_rows)
            row = {
                "id": f"10000000-0000-4000-8000-{n:012d}",
                "user_id": user_id,
                "client_id": client["id"],
                "outcome": outcome,
                "note": rng.choice(NOTES) if rng.random() < 0.3 else None,
                "happened_at": happened,
                "callback_at": None,
                "callback_id": None,
                "created_at": happened,
                "body_hash": "bench",
            }
            touch_rows.append(row)
            client["last_touch_at"] = happened
            if outcome == "reached":
                client["last_reached_at"] = happened
                client["attempts_since_reached"] = 0
            else:
                client["attempts_since_reached"] += 1
            if outcome != "reached" and rng.random() < 0.7:
                due_day = scheduling.add_business_days(day, 2 if outcome == "left_message" else 1)
                row["callback_at"] = scheduling.at_local(due_day, scheduling.DEFAULT_CALL_TIME, tz)
                row["callback_id"] = f"20000000-0000-4000-8000-{n:012d}"
                promise = {
                    "id": row["callback_id"],
                    "user_id": user_id,
                    "client_id": client["id"],
                    "touch_id": row["id"],
                    "origin_at": happened,
                    "due_at": row["callback_at"],
                    "status": "open",
                    "done_at": None,
                    "created_at": happened,
                    "updated_at": happened,
                }
                callback_rows.append(promise)
                open_promise[owner] = promise
                promised_for.setdefault(due_day, []).append(owner)
    for promise in open_promise.values():
        if rng.random() < 0.05:
            promise["status"] = "cancelled"

    engine = app.extensions["sqlalchemy"].engine
    with engine.begin() as conn:
        conn.execute(sa.insert(clients), client_rows)
        for start in range(0, len(touch_rows), 5000):
            conn.execute(sa.insert(touches), touch_rows[start : start + 5000])
        for start in range(0, len(callback_rows), 5000):
            conn.execute(sa.insert(callbacks), callback_rows[start : start + 5000])
    return {"clients": len(client_rows), "touches": len(touch_rows), "promises": len(callback_rows)}


def analyze(app) -> None:
    """Give the query planner statistics. PostgreSQL's autovacuum does this on its own after a
    bulk load; the app never runs ANALYZE on SQLite, so that is measured without, by default."""
    engine = app.extensions["sqlalchemy"].engine
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    else:
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(call) -> float:
    start = time.perf_counter()
    resp = call()
    elapsed = (time.perf_counter() - start) * 1000
    assert resp.status_code in (200, 201), resp.get_data(as_text=True)[:300]
    return elapsed


def run(url: str, args: argparse.Namespace) -> None:
    app = create_bench_app(
        {"DATABASE_URL": url, "SECRET_KEY": "bench", "PASSWORD_HASH_METHOD": "scrypt:1024:8:1"}
    )
    with app.app_context():
        alembic.upgrade()
    backend = app.extensions["sqlalchemy"].engine.dialect.name
    rep = register_rep(app, email="bench@example.com", timezone=ZONE)
    made = seed(app, rep.user["id"], args.clients, args.touches, args.long_streak)
    if backend == "postgresql" or args.analyze:
        analyze(app)
    bare = app.test_client()

    first = rep.get("/stats").json
    print(
        f"\n{backend}: {made['clients']} clients, {made['touches']} touches, "
        f"{made['promises']} promises; streak {first['streak']['days']} days, "
        f"promises due {first['promises']['due']} (kept {first['promises']['kept']}), "
        f"coverage A {first['coverage']['tiers'][0]['share']}"
    )
    subjects = {
        "GET /stats": lambda: rep.get("/stats"),
        "GET /today": lambda: rep.get("/today"),
        "bare JSON": lambda: bare.post(BARE_PATH, json={"id": "x"}),
    }
    for _ in range(args.warmup):
        for call in subjects.values():
            timed(call)
    times: dict[str, list[float]] = {name: [] for name in subjects}
    for _ in range(args.runs):
        for name, call in subjects.items():
            times[name].append(timed(call))
    load = os.getloadavg()
    stats_median = statistics.median(times["GET /stats"])
    for name, values in times.items():
        median = statistics.median(values)
        ratio = stats_median / median
        print(
            f"  {name:11s} median {median:7.2f} ms   p95 {percentile(values, 0.95):7.2f} ms"
            + ("" if name == "GET /stats" else f"   /stats is {ratio:5.2f}x this")
        )
    verdict = "met" if stats_median < GOAL_MS else "NOT met"
    print(
        f"  goal: /stats median under {GOAL_MS:.0f} ms: {verdict} "
        f"({args.runs} runs each, interleaved; load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f})"
    )
    app.extensions["sqlalchemy"].engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--touches", type=int, default=50_000)
    parser.add_argument("--long-streak", action="store_true", help="no holidays: 2-year streak")
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--analyze", action="store_true", help="ANALYZE SQLite after seeding")
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
