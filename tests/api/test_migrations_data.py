"""Upgrading a database that holds data, from the first migration to head, loses nothing.

A database is built at revision 0001 and filled the way the app of that day would have filled
it: reps with their settings, clients (tags, notes in several scripts, archived ones), their
call logs with consistent derived fields, and promises open, kept, cancelled, pushed and failed.
Then it is upgraded to head, on SQLite and on PostgreSQL (in a schema of its own, like
``tests/conftest.py`` does), and:

- every row and every column that existed at 0001 reads back exactly as written;
- the columns added since have their defaults;
- the foreign keys still hold (on SQLite, table rebuilds could have broken them);
- the app starts on it and works: the rep logs in, lists, logs a call, changes settings, gets
  the calendar feed and the exports, all of it agreeing with the rows written at 0001.

A new migration that rebuilds a table on SQLite (``batch_alter_table`` with ``recreate``) with
foreign keys on would cascade-delete the rows that point at it: this test is what catches that.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from werkzeug.security import generate_password_hash

from tests.conftest import BACKENDS, PASSWORD, PG_URL
from webapp import create_app
from webapp.extensions import alembic

FIRST = "0001"
REPS = 3
CLIENTS_PER_REP = 25
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """An empty database: a SQLite file, or a PostgreSQL schema made for this test alone."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    assert PG_URL
    schema = f"touchbase_mig_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.dispose()


def _app(url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("TOUCHBASE_INSTANCE_PATH", str(tmp_path / "instance"))
    return create_app(
        {"DATABASE_URL": url, "TESTING": True, "PASSWORD_HASH_METHOD": "scrypt:1024:8:1"}
    )


def _instant(engine: sa.Engine, moment: datetime | None) -> datetime | None:
    """How the app stores an instant: naive UTC on SQLite, aware on PostgreSQL."""
    if moment is None or engine.dialect.name != "sqlite":
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def old_rows(engine: sa.Engine) -> dict[str, list[dict[str, Any]]]:
    """Rows as the 0001 app would have written them, with consistent derived fields."""
    rng = random.Random(1)
    at = lambda moment: _instant(engine, moment)  # noqa: E731
    rows: dict[str, list[dict[str, Any]]] = {
        "users": [],
        "clients": [],
        "touches": [],
        "callbacks": [],
    }
    password_hash = generate_password_hash(PASSWORD, "scrypt:1024:8:1")
    names = ["Ann Smith", "Björk Guðmundsdóttir", "李小龍", "Zoë O'Brien", "Олег Иванов", "Ngozi"]
    for r in range(REPS):
        user_id = str(uuid.uuid4())
        rows["users"].append(
            {
                "id": user_id,
                "email": f"rep{r}@example.com",
                "password_hash": password_hash,
                "name": f"Rep {r}",
                "timezone": ["America/Chicago", "Europe/London", "Pacific/Auckland"][r],
                "daily_goal": 10 + r,
                "quiet_start": None if r == 2 else "21:00",
                "quiet_end": None if r == 2 else "08:00",
                "reconnect_after_days": 90,
                "call_time": "09:00",
                "tier_a_days": 30,
                "tier_b_days": 90,
                "tier_c_days": 180,
                "created_at": at(NOW - timedelta(days=400)),
            }
        )
        for c in range(CLIENTS_PER_REP):
            client_id = str(uuid.uuid4())
            created = NOW - timedelta(days=300 - c)
            log = []
            moment = created
            for _ in range(rng.randrange(0, 7)):
                moment += timedelta(days=rng.randrange(1, 30), minutes=rng.randrange(600))
                if moment >= NOW:
                    break
                log.append((moment, rng.choice(["reached", "left_message", "no_answer"])))
            reached = [m for m, outcome in log if outcome == "reached"]
            last_reached = max(reached) if reached else None
            rows["clients"].append(
                {
                    "id": client_id,
                    "user_id": user_id,
                    "name": f"{names[c % len(names)]} {r}-{c}",
                    "phone": f"+1312555{r}{c:03d}" if c % 4 else None,
                    "email": f"client{r}-{c}@example.org" if c % 3 else None,
                    "company": "Acme, Inc." if c % 2 else None,
                    "notes": "Prefers mornings.\nSecond line — with a dash" if c % 5 == 0 else None,
                    "talking_points": "spring range" if c % 7 == 0 else None,
                    "tags": [["A"], ["B", "vip"], [], ["C"]][c % 4],
                    "cadence_days": [None, 14, 30][c % 3],
                    "created_at": at(created),
                    "updated_at": at(log[-1][0] if log else created),
                    "archived_at": at(NOW - timedelta(days=3)) if c % 11 == 10 else None,
                    "last_touch_at": at(log[-1][0]) if log else None,
                    "last_reached_at": at(last_reached),
                    "attempts_since_reached": sum(
                        1
                        for m, outcome in log
                        if outcome != "reached" and (last_reached is None or m > last_reached)
                    ),
                    "create_hash": uuid.uuid4().hex + uuid.uuid4().hex,
                }
            )
            for i, (moment, outcome) in enumerate(log):
                touch_id = str(uuid.uuid4())
                promise = i == len(log) - 1 or rng.random() < 0.3
                callback_id = str(uuid.uuid4()) if promise else None
                due = moment + timedelta(days=rng.choice([1, 2, 7, 30, 400]))
                rows["touches"].append(
                    {
                        "id": touch_id,
                        "user_id": user_id,
                        "client_id": client_id,
                        "outcome": outcome,
                        "note": rng.choice([None, "Asked for a quote", "Rappeler à 14 h"]),
                        "happened_at": at(moment),
                        "callback_at": at(due) if promise else None,
                        "callback_id": callback_id,
                        "created_at": at(moment + timedelta(seconds=rng.randrange(1, 9000))),
                        "body_hash": uuid.uuid4().hex + uuid.uuid4().hex,
                    }
                )
                if not promise:
                    continue
                later = [m for m, _ in log[i + 1 :]]
                status = "done" if later else rng.choice(["open", "open", "open", "cancelled"])
                pushed = status == "open" and due < NOW and rng.random() < 0.5
                failed = status == "open" and not pushed and rng.random() < 0.1
                rows["callbacks"].append(
                    {
                        "id": callback_id,
                        "user_id": user_id,
                        "client_id": client_id,
                        "touch_id": touch_id,
                        "origin_at": at(moment),
                        "due_at": at(due),
                        "status": status,
                        "created_at": at(moment),
                        "updated_at": at(later[0] if later else moment),
                        "done_at": at(later[0]) if later else None,
                        "notified_at": at(due + timedelta(seconds=30)) if pushed else None,
                        "claimed_until": at(due + timedelta(minutes=2)) if pushed else None,
                        "send_attempts": 1 if pushed else 5 if failed else 0,
                        "last_error": "410 Gone: the browser unsubscribed" if failed else None,
                    }
                )
    return rows


def read_old_columns(engine: sa.Engine, old: dict[str, list[str]]) -> dict[str, list[tuple]]:
    """Every row of the 0001 tables, the 0001 columns only, in a stable order."""
    meta = sa.MetaData()
    meta.reflect(engine, only=list(old))
    with engine.connect() as conn:
        return {
            name: [
                tuple(row)
                for row in conn.execute(
                    sa.select(*(meta.tables[name].c[col] for col in cols)).order_by(
                        meta.tables[name].c.id
                    )
                )
            ]
            for name, cols in old.items()
        }


def test_upgrade_from_the_first_migration_keeps_every_row(empty_url, tmp_path, monkeypatch):
    app = _app(empty_url, tmp_path, monkeypatch)
    engine = app.extensions["sqlalchemy"].engine
    with app.app_context():
        alembic.upgrade(FIRST)
    meta = sa.MetaData()
    meta.reflect(engine)
    assert set(meta.tables) - {"alembic_version"} == {"users", "clients", "touches", "callbacks"}
    rows = old_rows(engine)
    with engine.begin() as conn:
        for name in ("users", "clients", "touches", "callbacks"):
            conn.execute(meta.tables[name].insert(), rows[name])
    old_columns = {name: [c.name for c in meta.tables[name].c] for name in rows}
    before = read_old_columns(engine, old_columns)
    assert {name: len(found) for name, found in before.items()} == {
        name: len(found) for name, found in rows.items()
    }
    assert len(rows["touches"]) > 100 and len(rows["callbacks"]) > 50

    with app.app_context():
        alembic.upgrade()
        assert alembic.compare_metadata() == []
    assert read_old_columns(engine, old_columns) == before

    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        added = conn.execute(
            sa.text(
                "SELECT count(*) FROM users WHERE weekly_push = :f AND streak_weekends = :f"
                " AND prompts IS NULL AND digest_time IS NULL AND calendar_token_hash IS NULL"
            ),
            {"f": False},
        ).scalar_one()
        assert added == REPS
        assert (
            conn.execute(
                sa.text("SELECT count(*) FROM callbacks WHERE claim_token IS NOT NULL")
            ).scalar_one()
            == 0
        )
        assert conn.execute(sa.text("SELECT count(*) FROM push_subscriptions")).scalar_one() == 0
    engine.dispose()

    # A fresh app on the upgraded database, as after a deploy: everything works on old data.
    app = _app(empty_url, tmp_path, monkeypatch)
    try:
        _the_app_works_on_the_old_data(app, rows)
    finally:
        app.extensions["sqlalchemy"].engine.dispose()


def _aware(moment: datetime | None) -> datetime | None:
    """An instant as written (naive UTC on SQLite), as the API answers it: aware."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _the_app_works_on_the_old_data(app: Any, rows: dict[str, list[dict[str, Any]]]) -> None:
    user = rows["users"][0]
    mine = [c for c in rows["clients"] if c["user_id"] == user["id"]]
    web = app.test_client()
    token = web.get("/api/v1/csrf").json["csrf_token"]
    login = web.post(
        "/api/v1/auth/login",
        json={"email": user["email"], "password": PASSWORD},
        headers={"X-CSRFToken": token},
    )
    assert login.status_code == 200, login.json
    headers = {"X-CSRFToken": login.json["csrf_token"]}
    me = login.json["user"]
    assert (me["id"], me["timezone"], me["daily_goal"]) == (
        user["id"],
        user["timezone"],
        user["daily_goal"],
    )

    listed = web.get("/api/v1/clients?limit=500").json["items"]
    active = [c for c in mine if c["archived_at"] is None]
    assert {c["id"] for c in listed} == {c["id"] for c in active}
    by_id = {c["id"]: c for c in listed}
    for client in active:
        got = by_id[client["id"]]
        assert (got["name"], got["tags"], got["notes"]) == (
            client["name"],
            client["tags"],
            client["notes"],
        )
        assert got["attempts_since_reached"] == client["attempts_since_reached"]
        want_last = _aware(client["last_touch_at"])
        got_last = got["last_touch_at"] and datetime.fromisoformat(got["last_touch_at"])
        assert got_last == want_last, client["name"]

    touches = web.get("/api/v1/touches?limit=500").json["items"]
    assert {t["id"] for t in touches} == {
        t["id"] for t in rows["touches"] if t["user_id"] == user["id"]
    }
    open_now = web.get("/api/v1/callbacks?status=open&limit=500").json["items"]
    assert {c["id"] for c in open_now} == {
        c["id"] for c in rows["callbacks"] if c["user_id"] == user["id"] and c["status"] == "open"
    }
    assert web.get("/api/v1/today").status_code == 200

    # Writing works on old rows: a call on an old client keeps its open promise.
    target = next(
        c for c in rows["callbacks"] if c["user_id"] == user["id"] and c["status"] == "open"
    )
    touch = {"id": str(uuid.uuid4()), "client_id": target["client_id"], "outcome": "reached"}
    assert web.post("/api/v1/touches", json=touch, headers=headers).status_code == 201
    kept = web.get("/api/v1/callbacks?limit=500").json["items"]
    assert next(c for c in kept if c["id"] == target["id"])["status"] == "done"
    client = web.get(f"/api/v1/clients/{target['client_id']}").json
    assert client["attempts_since_reached"] == 0

    # The settings and features added by later migrations work for a rep made at 0001.
    changed = web.patch(
        "/api/v1/me",
        json={"digest_time": "07:30", "weekly_push": True, "prompts": ["How was the launch?"]},
        headers=headers,
    )
    assert changed.status_code == 200, changed.json
    feed = web.get("/api/v1/calendar")
    assert feed.status_code == 200 and feed.json["url"]
    exported = web.get("/api/v1/export/clients.csv").get_data(as_text=True)
    assert all(c["name"] in exported for c in active)


def test_a_migration_that_would_leave_broken_references_on_sqlite_is_rolled_back(
    tmp_path, monkeypatch
):
    # Migrations run with SQLite's foreign keys off (so a table rebuild cannot cascade), and
    # check every reference before each step commits: a step that leaves a row pointing nowhere
    # fails loudly and is undone, instead of committing a database the app would trip over.
    app = _app(f"sqlite:///{tmp_path / 'broken.db'}", tmp_path, monkeypatch)
    engine = app.extensions["sqlalchemy"].engine
    with app.app_context():
        alembic.upgrade(FIRST)
    rows = old_rows(engine)
    meta = sa.MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        # Keys off (outside a transaction, on the driver) to plant the broken reference.
        conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        with conn.begin():
            conn.execute(meta.tables["users"].insert(), rows["users"][:1])
            orphan = {**rows["clients"][0], "user_id": rows["users"][0]["id"]}
            conn.execute(meta.tables["clients"].insert(), [orphan])
            conn.execute(
                meta.tables["touches"].insert(),
                [{**t, "client_id": str(uuid.uuid4())} for t in rows["touches"][:1]],
            )
    with app.app_context(), pytest.raises(sa.exc.IntegrityError, match="broken references"):
        alembic.upgrade()
    with app.app_context():
        assert [s.revision for s in alembic.current()] == [FIRST]
    engine.dispose()
