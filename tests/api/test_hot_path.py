"""The one-tap write's hot path: what its shortcuts must leave exactly as they were.

Speed itself is measured in ``bench/touch_write.py``; these tests hold the behaviour.
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from tests.conftest import register_rep
from webapp import create_app
from webapp.db import db
from webapp.services.touches import _RECOMPUTE, prepare_touch, write_touch


def test_a_logged_in_answer_varies_on_the_cookie_and_leaves_it_alone(rep):
    client_id = rep.add_client()["id"]
    rep.touch(client_id)  # the first answer after logging in may re-issue the cookie (_seen)
    resp = rep.touch(client_id)
    assert resp.status_code == 201
    assert resp.headers.get_all("Vary") == ["Cookie"]
    assert "Set-Cookie" not in resp.headers


def _backend_waits_for_a_lock(app: Flask, pid: int) -> bool:
    with app.extensions["sqlalchemy"].engine.connect() as conn:
        return bool(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE pid = :pid AND wait_event_type = 'Lock'"
                ),
                {"pid": pid},
            ).scalar_one()
        )


def test_a_touch_that_waited_for_a_new_promise_keeps_it(app, rep):
    """A later touch whose write waited on the client while a promise was being made keeps it.

    On PostgreSQL the later touch's update waits for the client's row lock; what it read in that
    statement predates the promise, so the fulfilment must not trust it (services/touches.py).
    """
    client_id = rep.add_client()["id"]
    user_id = rep.user["id"]
    start = datetime.now(UTC) - timedelta(hours=2)
    promise = prepare_touch(
        user_id,
        {
            "id": str(uuid.uuid4()),
            "client_id": client_id,
            "outcome": "left_message",
            "happened_at": start,
            "callback_at": start + timedelta(days=1),
        },
    )
    later = prepare_touch(
        user_id,
        {
            "id": str(uuid.uuid4()),
            "client_id": client_id,
            "outcome": "reached",
            "happened_at": start + timedelta(hours=1),
        },
    )
    backend: list[int] = []
    errors: list[BaseException] = []

    def write_later() -> None:
        try:
            with app.app_context(), db.fast_write() as conn:
                if conn.dialect.name == "postgresql":
                    backend.append(conn.cursor.connection.info.backend_pid)
                write_touch(conn, later)
        except BaseException as exc:  # re-raised in the test's own thread
            errors.append(exc)

    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            # One writer at a time: the later touch simply waits for the promise's commit.
            with db.fast_write() as conn:
                write_touch(conn, promise)
            write_later()
        else:
            with db.fast_write() as conn:
                write_touch(conn, promise)  # holds the client's row until the commit
                thread = threading.Thread(target=write_later)
                thread.start()
                deadline = time.monotonic() + 30
                while not (backend and _backend_waits_for_a_lock(app, backend[0])):
                    assert thread.is_alive() and time.monotonic() < deadline, errors
                    time.sleep(0.01)
            thread.join()
    assert not errors, errors
    callbacks = rep.get("/callbacks").json["items"]
    assert [c["status"] for c in callbacks] == ["done"]
    client = rep.get(f"/clients/{client_id}").json
    assert client["open_callback"] is None
    assert client["attempts_since_reached"] == 0


@pytest.fixture
def sqlite_app(sqlite_template: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An app on a SQLite copy, whatever the lane: the plan below is SQLite's."""
    monkeypatch.setenv("TOUCHBASE_INSTANCE_PATH", str(tmp_path / "instance"))
    path = tmp_path / "plan.db"
    shutil.copy(sqlite_template, path)
    app = create_app(
        {
            "DATABASE_URL": f"sqlite:///{path}",
            "TESTING": True,
            "PASSWORD_HASH_METHOD": "scrypt:1024:8:1",
        }
    )
    yield app, str(path)
    app.extensions["sqlalchemy"].engine.dispose()


def _recompute_steps(path: str, client_id: str) -> int:
    """SQLite virtual machine steps (in hundreds) that one recompute of the client takes."""
    compiled = _RECOMPUTE.compiled(sa.create_engine("sqlite://").dialect)
    params = {**compiled.fixed, "cid": client_id, "now": "2030-01-01 00:00:00.000000"}
    for name, process in compiled.binds:
        if not isinstance(params[name], str):
            params[name] = process(params[name])
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    with sqlite3.connect(path) as conn:
        conn.set_progress_handler(count, 100)
        conn.execute(compiled.sql, [params[n] for n in compiled.names or ()])
        conn.rollback()
    return steps


def test_a_late_arrival_reads_a_range_of_the_log_not_all_of_it(sqlite_app):
    app, path = sqlite_app
    rep = register_rep(app)
    client_id = rep.add_client()["id"]
    base = datetime(2026, 1, 1)

    def add_touches(n: int, offset: int) -> None:
        # Every fifth call reached the client: a real log, much longer than one cycle.
        rows = [
            (
                str(uuid.uuid4()),
                rep.user["id"],
                client_id,
                "reached" if i % 5 == 0 else "no_answer",
                (base + timedelta(minutes=offset + i)).isoformat(" "),
                (base + timedelta(minutes=offset + i)).isoformat(" "),
            )
            for i in range(n)
        ]
        with sqlite3.connect(path) as conn:
            conn.executemany(
                "INSERT INTO touches (id, user_id, client_id, outcome, happened_at, created_at,"
                " body_hash) VALUES (?, ?, ?, ?, ?, ?, 'x')",
                rows,
            )

    add_touches(20, 0)
    short = _recompute_steps(path, client_id)
    add_touches(20_000, -30_000)  # older history
    long = _recompute_steps(path, client_id)
    assert long <= short + 5, (short, long)


def test_the_write_turns_statements_are_planned_once(sqlite_app):
    """SQLite plans each of the hot path's statements once per connection, not on every run.

    It re-plans a statement on every run when a bound value is compared with a column that a
    partial index filters on (callbacks.status): services/touches.py writes those values into the
    SQL. ``sqlite_stmt`` counts the re-preparations of the statements a connection holds.
    """
    app, _path = sqlite_app
    rep = register_rep(app)
    client_id = rep.add_client()["id"]
    now = datetime.now(UTC)
    for i in range(3):
        # In order: a reached call, and an attempt whose promise the next round's call keeps.
        assert rep.touch(client_id, "reached").status_code == 201
        promise = {
            "id": str(uuid.uuid4()),
            "client_id": client_id,
            "outcome": "left_message",
            "callback_at": (now + timedelta(days=1)).isoformat(),
        }
        assert rep.post("/touches", promise).status_code == 201
        assert rep.post("/touches", promise).status_code == 200  # the phone's replay
        # Late: happened before every call above, with a promise of its own.
        late = rep.touch(
            client_id,
            "no_answer",
            happened_at=(now - timedelta(days=3 - i)).isoformat(),
            callback_at=(now + timedelta(days=2)).isoformat(),
        )
        assert late.status_code == 201
    with app.app_context():
        held = app.extensions["sqlalchemy"].kept.get()
        rows = held.execute("SELECT sql, run, reprep FROM sqlite_stmt WHERE run >= 3").fetchall()
    writes = [r for r in rows if r[0].startswith(("INSERT", "UPDATE", "SELECT"))]
    assert len(writes) >= 6, rows
    assert [(sql, run, reprep) for sql, run, reprep in writes if reprep > 1] == []


def test_the_app_remembers_plain_functions_and_still_wraps_coroutines(app):
    def plain() -> str:
        return "plain"

    async def coroutine() -> str:
        return "awaited"

    class Unhashable:
        __hash__ = None  # type: ignore[assignment]

        def __call__(self) -> str:
            return "called"

    assert app.ensure_sync(plain) is plain
    assert app.ensure_sync(plain) is plain
    unhashable = Unhashable()
    assert app.ensure_sync(unhashable) is unhashable
    try:
        wrapped = app.ensure_sync(coroutine)
    except RuntimeError:  # Flask's async support (asgiref) is not installed: still not cached
        assert coroutine not in app._plain
    else:
        assert wrapped is not coroutine and wrapped() == "awaited"
