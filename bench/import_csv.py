"""Importing a 10,000-row CSV, against a plain ``csv.DictReader`` pass over the same file.

    .venv/bin/python bench/import_csv.py [--rows 10000] [--repeat 5]

Both run in this process on the same file (a Google-like plain CSV: name, US phone in the usual
layouts, email, company, notes, tags, tier). The import is the whole service call: detect the
encoding, parse, normalise phones, match against the rep's clients, write in batches, commit,
into a fresh SQLite file each time (so every row is a create). A second figure is the re-import
of the same file (every row matched and skipped).

Time: best of ``--repeat`` runs each, with tracemalloc off. Memory: peak of Python allocations
(tracemalloc) during one run of each, with the file's size for scale.
Goal (issue 5): within 10x of the DictReader pass, and memory that does not grow with the file
beyond the rows themselves.
"""

from __future__ import annotations

import argparse
import csv
import gc
import os
import sys
import tempfile
import time
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from webapp import create_app
from webapp.db import db
from webapp.extensions import alembic
from webapp.services import accounts, imports

TIERS = {"A": 30, "B": 90, "C": 180}


def make_csv(path: str, rows: int) -> None:
    layouts = ("({a}) {b}-{c}", "{a}-{b}-{c}", "+1 {a} {b} {c}", "{a}.{b}.{c}")
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["Name", "Phone", "Email", "Company", "Notes", "Tags", "Tier"])
        for i in range(rows):
            phone = layouts[i % 4].format(a=312 + i % 500, b=555, c=f"{i % 10000:04d}")
            writer.writerow(
                [
                    f"Client Number {i}",
                    phone,
                    f"client{i}@example.com",
                    f"Company {i % 700}",
                    "Orders monthly; prefers a call before 10, not email." if i % 3 else "",
                    "wholesale, north" if i % 2 else "retail",
                    "ABC"[i % 3],
                ]
            )


def baseline(path: str) -> int:
    with open(path, newline="", encoding="utf-8") as f:
        return sum(1 for _ in csv.DictReader(f))


def new_app(folder: str, n: int):
    app = create_app({"DATABASE_URL": f"sqlite:///{folder}/bench{n}.db", "SECRET_KEY": "bench"})
    with app.app_context():
        alembic.upgrade()
        user = accounts.register(
            db.session, f"rep{n}@example.com", "x" * 12, "Rep", "UTC", "pbkdf2"
        )
        return app, user.id


def subject(app, user_id: str, path: str) -> dict:
    with app.app_context(), open(path, "rb") as stream, db.write() as conn:
        return imports.import_file(conn, user_id, stream, "US", TIERS)


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def peak(fn) -> int:
    gc.collect()
    tracemalloc.start()
    fn()
    result = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        os.environ["TOUCHBASE_INSTANCE_PATH"] = os.path.join(folder, "instance")
        path = os.path.join(folder, "clients.csv")
        make_csv(path, args.rows)
        size = os.path.getsize(path)
        counter = iter(range(10**6))

        def fresh_import() -> dict:
            app, user_id = new_app(folder, next(counter))
            start = time.perf_counter()
            summary = subject(app, user_id, path)
            fresh_import.elapsed = time.perf_counter() - start  # type: ignore[attr-defined]
            assert summary["created"] == args.rows, summary
            app.extensions["sqlalchemy"].engine.dispose()
            return summary

        base = best(lambda: baseline(path), args.repeat)
        runs = []
        for _ in range(args.repeat):
            gc.collect()
            fresh_import()
            runs.append(fresh_import.elapsed)  # type: ignore[attr-defined]
        imp = min(runs)

        app, user_id = new_app(folder, next(counter))
        subject(app, user_id, path)
        again = best(lambda: subject(app, user_id, path), args.repeat)

        base_mem = peak(lambda: baseline(path))
        app2, user2 = new_app(folder, next(counter))
        imp_mem = peak(lambda: subject(app2, user2, path))
        again_mem = peak(lambda: subject(app2, user2, path))

        print(f"file: {args.rows} rows, {size / 1e6:.2f} MB; python {sys.version.split()[0]}")
        print(f"csv.DictReader pass      {base * 1000:8.1f} ms   peak {base_mem / 1e6:6.2f} MB")
        print(
            f"import (all created)     {imp * 1000:8.1f} ms   peak {imp_mem / 1e6:6.2f} MB"
            f"   ratio {imp / base:5.1f}x (goal <= 10x)"
        )
        print(
            f"re-import (all skipped)  {again * 1000:8.1f} ms   peak {again_mem / 1e6:6.2f} MB"
            f"   ratio {again / base:5.1f}x"
        )


if __name__ == "__main__":
    main()
