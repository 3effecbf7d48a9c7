"""Importing a 10,000-row CSV, against a plain ``csv.DictReader`` pass over the same file.

    .venv/bin/python bench/import_csv.py [--rows 10000] [--repeat 7] [--memory-rows 10000,50000]

Both run in this process on the same file (a Google-like plain CSV: name, US phone in the usual
layouts, email, company, notes, tags, tier). The import is the whole service call: detect the
encoding, parse, normalise phones, match against the rep's clients, write in batches, commit,
into a fresh SQLite file each time (so every row is a create). The re-import is the same file
again into the same account (every row matched and skipped).

Time: each round runs the DictReader pass, a first import and a re-import one after the other,
so a change in the machine's load hits all three alike; the best of ``--repeat`` rounds is
kept for each, with tracemalloc off. Wall time is the figure; the process's CPU time is shown
beside it, because on a shared machine the wall time of the longer run is the likelier to be
stretched by other work. The first import's commit includes SQLite's WAL checkpoint (it is
past 1,000 pages), which waits for the disk: its wall time is shown on its own line too.

Memory: the peak of Python allocations (tracemalloc) during one run of each, for files of
``--memory-rows`` rows, beside the peak of holding the file's rows as parsed lists
(``list(csv.reader(f))``): "the rows themselves".

Goal (issue 5): within 10x of the DictReader pass, and memory that does not grow with the file
beyond the rows themselves.
"""

from __future__ import annotations

import argparse
import csv
import gc
import logging
import os
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

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
            phone = layouts[i % 4].format(
                a=212 + i // 10000 % 700, b=555 + i // 1000 % 10, c=f"{i % 10000:04d}"
            )
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


def held_rows(path: str) -> int:
    """The rows themselves: every row of the file kept as a parsed list."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return len(rows)


class Account:
    """A fresh SQLite database with one rep, to import into."""

    count = 0

    def __init__(self, folder: str) -> None:
        Account.count += 1
        url = f"sqlite:///{folder}/bench{Account.count}.db"
        self.app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench"})
        with self.app.app_context():
            alembic.upgrade()
            user = accounts.register(
                db.session, f"rep{Account.count}@example.com", "x" * 12, "Rep", "UTC", "pbkdf2"
            )
            self.user_id = user.id

    def import_file(self, path: str) -> dict[str, Any]:
        with self.app.app_context(), open(path, "rb") as stream, db.write() as conn:
            summary = imports.import_file(conn, self.user_id, stream, "US", TIERS)
            committing = time.perf_counter()
        self.commit_seconds = time.perf_counter() - committing
        return summary

    def close(self) -> None:
        self.app.extensions["sqlalchemy"].engine.dispose()


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall and CPU seconds of ``fn()``, and its result."""
    gc.collect()
    start, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - start, time.process_time() - cpu, result


def peak(fn: Callable[[], Any]) -> tuple[int, Any]:
    gc.collect()
    tracemalloc.start()
    result = fn()
    top = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return top, result


def check(summary: dict[str, Any], rows: int, kind: str) -> None:
    expected = {"created": rows, "updated": 0, "skipped": 0, "errors": []}
    if kind == "skipped":
        expected = {"created": 0, "updated": 0, "skipped": rows, "errors": []}
    assert summary == expected, summary


def measure_time(folder: str, path: str, rows: int, repeat: int) -> dict[str, float]:
    best: dict[str, float] = {}

    def keep(key: str, value: float) -> None:
        best[key] = min(best.get(key, value), value)

    for _ in range(repeat):
        account = Account(folder)
        wall, cpu, _ = timed(lambda: baseline(path))
        keep("base", wall)
        keep("base cpu", cpu)
        wall, cpu, summary = timed(lambda: account.import_file(path))  # noqa: B023
        check(summary, rows, "created")
        keep("first", wall)
        keep("first cpu", cpu)
        keep("first commit", account.commit_seconds)
        wall, cpu, summary = timed(lambda: account.import_file(path))  # noqa: B023
        check(summary, rows, "skipped")
        keep("again", wall)
        keep("again cpu", cpu)
        account.close()
    return best


def measure_memory(folder: str, path: str, rows: int) -> dict[str, int]:
    account = Account(folder)
    out = {"base": peak(lambda: baseline(path))[0], "held": peak(lambda: held_rows(path))[0]}
    out["first"], summary = peak(lambda: account.import_file(path))
    check(summary, rows, "created")
    out["again"], summary = peak(lambda: account.import_file(path))
    check(summary, rows, "skipped")
    account.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--memory-rows", default="10000,50000")
    args = parser.parse_args()
    logging.getLogger("alembic").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as folder:
        os.environ["TOUCHBASE_INSTANCE_PATH"] = os.path.join(folder, "instance")
        path = os.path.join(folder, "clients.csv")
        make_csv(path, args.rows)
        load = "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
        print(f"python {sys.version.split()[0]}; {load} before")
        print(
            f"time: {args.rows} rows, {os.path.getsize(path) / 1e6:.2f} MB, best of {args.repeat}"
        )
        best = measure_time(folder, path, args.rows, args.repeat)
        base, base_cpu = best["base"], best["base cpu"]
        print("                                  wall              CPU")
        print(f"  csv.DictReader pass      {base * 1000:8.1f} ms        {base_cpu * 1000:8.1f} ms")
        for key, label in (
            ("first", "import (all created)  "),
            ("again", "re-import (all skipped)"),
        ):
            ratio, cpu = best[key] / base, best[f"{key} cpu"]
            verdict = "ok" if ratio <= 10 else "NOT YET"
            print(
                f"  {label}  {best[key] * 1000:8.1f} ms {ratio:5.1f}x  {cpu * 1000:8.1f} ms"
                f" {cpu / base_cpu:5.1f}x   (goal <= 10x: {verdict})"
            )
        commit = best["first commit"] * 1000
        print(f"    (the first import's commit, its WAL checkpoint included: {commit:.1f} ms)")
        print("memory: peak of Python allocations (tracemalloc)")
        print("     rows   file MB   DictReader   rows held   import   re-import   import/held")
        for rows in (int(n) for n in args.memory_rows.split(",")):
            mem_path = os.path.join(folder, f"memory{rows}.csv")
            make_csv(mem_path, rows)
            mem = measure_memory(folder, mem_path, rows)
            print(
                f"  {rows:7d}  {os.path.getsize(mem_path) / 1e6:8.2f}"
                f"  {mem['base'] / 1e6:8.2f} MB  {mem['held'] / 1e6:7.2f} MB"
                f"  {mem['first'] / 1e6:5.2f} MB  {mem['again'] / 1e6:7.2f} MB"
                f"   {mem['first'] / mem['held']:5.2f}"
            )
        print("load {:.2f} {:.2f} {:.2f} after".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
