"""Sessions (issue 7): a logout really ends the session, everywhere at once.

Sessions are rows (``sessions``) that the signed cookie names. Checked here, on both databases:

- a copy of the cookie is dead the moment its session logs out; "log out everywhere" ends every
  session of the rep and nobody else's; logging in again ends the session the cookie had;
- a cookie from before the sessions table (it names the rep, not a session) is simply logged
  out; the per-request load is one select, by primary key on both tables;
- sessions nobody has used for longer than a cookie lives are pruned at the next login, and a
  session in use is marked seen once a day;
- migration 0008 goes down and up again without losing data.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from tests.conftest import PASSWORD, Rep
from tests.push.fake_service import browser_keys
from webapp import security
from webapp.auth import SESSION_KEEP_DAYS
from webapp.extensions import alembic

API = "/api/v1"
COOKIE = "touchbase_session"
A_ENDPOINT = "https://fcm.googleapis.com/fcm/send/a-browser"
B_ENDPOINT = "https://fcm.googleapis.com/fcm/send/b-browser"


def _engine(app) -> sa.Engine:
    return app.extensions["sqlalchemy"].engine


def _login(app, email: str = "rep@example.com", password: str = PASSWORD) -> Rep:
    """A second phone (its own cookie jar) logging in as an existing rep."""
    client = app.test_client()
    token = client.get(f"{API}/csrf").json["csrf_token"]
    resp = client.post(
        f"{API}/auth/login",
        json={"email": email, "password": password},
        headers={"X-CSRFToken": token},
    )
    assert resp.status_code == 200, resp.json
    return Rep(client, resp.json["user"], resp.json["csrf_token"])


def _copy(app, rep: Rep) -> Rep:
    """Someone who copied the rep's cookie (and token) into another browser."""
    client = app.test_client()
    client.set_cookie(COOKIE, rep.client.get_cookie(COOKIE).value)
    return Rep(client, rep.user, rep.token)


def _sessions(app, user_id: str) -> list[Any]:
    with _engine(app).connect() as conn:
        return conn.execute(
            sa.text("SELECT id, seen_on FROM sessions WHERE user_id = :u ORDER BY id"),
            {"u": user_id},
        ).all()


def _assert_error(resp, status: int, code: str) -> None:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert set(resp.json) == {"error"} and resp.json["error"]["code"] == code
    assert resp.json["error"]["message"]


# ---- sessions -------------------------------------------------------------------------------


def test_a_copied_cookie_is_dead_once_its_session_logs_out(app, rep):
    thief = _copy(app, rep)
    assert thief.get("/me").status_code == 200
    assert rep.post("/auth/logout").status_code == 204
    # At once, and for every kind of request: a read, a write, the hot path.
    _assert_error(thief.get("/me"), 401, "unauthorized")
    _assert_error(thief.post("/clients", {"name": "Planted"}), 401, "unauthorized")
    client_id = str(uuid.uuid4())
    _assert_error(thief.touch(client_id, "reached"), 401, "unauthorized")
    assert _sessions(app, rep.user["id"]) == []
    # The rep logs in again: a new session, and the copied cookie is still nobody.
    again = _login(app)
    assert again.get("/me").status_code == 200
    assert thief.get("/me").status_code == 401


def _devices(app, user_id: str) -> int:
    with _engine(app).connect() as conn:
        return conn.execute(
            sa.text("SELECT count(*) FROM push_subscriptions WHERE user_id = :u"), {"u": user_id}
        ).scalar_one()


def test_log_out_everywhere_ends_every_session_of_the_rep_only(app, rep, other_rep):
    phone = _login(app)
    thief = _copy(app, rep)
    assert len(_sessions(app, rep.user["id"])) == 2
    for who, endpoint in ((rep, A_ENDPOINT), (other_rep, B_ENDPOINT)):
        body = {"endpoint": endpoint, "keys": browser_keys()}
        assert who.post("/push/subscriptions", body).status_code == 201
    resp = phone.post("/auth/logout-all")
    assert resp.status_code == 204 and resp.get_data() == b""
    assert phone.client.get_cookie(COOKIE) is None  # this browser's cookie is emptied too
    for who in (rep, phone, thief):
        _assert_error(who.get("/me"), 401, "unauthorized")
    assert _sessions(app, rep.user["id"]) == []
    # A logged-out phone gets no more reminders (they carry clients' names): the rep's push
    # subscriptions are dropped too, until a phone logs in and subscribes again.
    assert _devices(app, rep.user["id"]) == 0
    # The other rep is not logged out.
    assert other_rep.get("/me").status_code == 200
    assert len(_sessions(app, other_rep.user["id"])) == 1
    assert _devices(app, other_rep.user["id"]) == 1
    # Needs a session of its own: nobody's sessions end from an anonymous call.
    _assert_error(app.test_client().post(f"{API}/auth/logout-all"), 400, "csrf_failed")
    anonymous = app.test_client()
    token = anonymous.get(f"{API}/csrf").json["csrf_token"]
    nobody = anonymous.post(f"{API}/auth/logout-all", headers={"X-CSRFToken": token})
    _assert_error(nobody, 401, "unauthorized")
    assert other_rep.get("/me").status_code == 200


def test_logging_in_again_ends_the_session_the_cookie_had(app, rep):
    copy = _copy(app, rep)
    (old,) = _sessions(app, rep.user["id"])
    rep.login()
    (new,) = _sessions(app, rep.user["id"])
    assert new.id != old.id
    assert rep.get("/me").status_code == 200
    _assert_error(copy.get("/me"), 401, "unauthorized")
    # The id is long and random: 32 bytes from secrets, URL-safe.
    assert len(new.id) >= 43 and new.id != rep.user["id"]


def test_a_cookie_from_before_the_sessions_table_is_logged_out(app, rep):
    # Before migration 0008 the cookie carried the rep's own id. Signed with the right key, it
    # names no session now: the rep is asked to log in (the phone keeps its outbox on a 401).
    signer = app.session_interface.get_signing_serializer(app)
    old = signer.dumps({"_user_id": rep.user["id"], "_fresh": True, "_permanent": True})
    client = app.test_client()
    client.set_cookie(COOKIE, old)
    _assert_error(client.get(f"{API}/me"), 401, "unauthorized")
    _assert_error(client.get(f"{API}/clients"), 401, "unauthorized")


def test_one_indexed_select_loads_the_rep_per_request(app, rep, monkeypatch):
    calls = []
    real = security._lookup
    monkeypatch.setattr(security, "_lookup", lambda sid: calls.append(sid) or real(sid))
    client = rep.add_client("Counted")
    calls.clear()
    # GET /export/touches.csv needs the rep's id (the guard) and settings (the time zone).
    assert rep.get("/export/touches.csv").status_code == 200
    assert rep.touch(client["id"], "reached").status_code == 201
    assert rep.get("/today").status_code == 200
    assert len(calls) == 3 and len(set(calls)) == 1
    engine = _engine(app)
    if engine.dialect.name != "sqlite":
        return
    sql = security._LOAD_SESSION.compiled(engine.dialect).sql
    with engine.connect() as conn:
        plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", ("x",)).all()
    steps = [row[-1] for row in plan]
    # Both tables by their primary key: no scan, whatever the number of sessions.
    assert len(steps) == 2 and all(s.startswith("SEARCH") for s in steps), steps
    assert any("sessions" in s and "(id=?)" in s for s in steps), steps
    assert any("users" in s and "(id=?)" in s for s in steps), steps


def _set_seen(app, session_id: str, seen_on: date) -> None:
    with _engine(app).begin() as conn:
        conn.execute(
            sa.text("UPDATE sessions SET seen_on = :d WHERE id = :i"),
            {"d": seen_on, "i": session_id},
        )


def test_old_sessions_are_pruned_at_login_and_used_ones_are_kept(app, rep, other_rep):
    today = datetime.now(UTC).date()
    (stale,) = _sessions(app, rep.user["id"])
    (recent,) = _sessions(app, other_rep.user["id"])
    _set_seen(app, stale.id, today - timedelta(days=SESSION_KEEP_DAYS + 1))
    _set_seen(app, recent.id, today - timedelta(days=SESSION_KEEP_DAYS - 1))
    # Anyone's login prunes: here the other rep's, on a second phone.
    _login(app, "other@example.com")
    assert [s.id for s in _sessions(app, rep.user["id"])] == []
    assert recent.id in [s.id for s in _sessions(app, other_rep.user["id"])]
    _assert_error(rep.get("/me"), 401, "unauthorized")
    # The other rep's session, still in use, is marked seen today by its next request, once.
    assert other_rep.get("/me").status_code == 200
    seen = {s.id: s.seen_on for s in _sessions(app, other_rep.user["id"])}
    assert seen[recent.id] in (today, today.isoformat())


def test_a_session_seen_today_is_not_written_again(app, rep):
    (mine,) = _sessions(app, rep.user["id"])
    writes = []
    engine = _engine(app)

    def count(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("UPDATE SESSIONS"):
            writes.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        for _ in range(3):
            assert rep.get("/me").status_code == 200
        assert writes == []
        _set_seen(app, mine.id, datetime.now(UTC).date() - timedelta(days=1))
        writes.clear()
        for _ in range(3):
            assert rep.get("/me").status_code == 200
        assert len(writes) == 1
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)


def test_migration_0008_goes_down_and_up_keeping_the_data(app, rep):
    # Down: the sessions table goes (everyone logs in again), nothing else does. Up again: the
    # app works, after a new login. (Upgrading with data in it: test_migrations_data.py.)
    client = rep.add_client("Kept Through It")
    assert rep.touch(client["id"], "reached").status_code == 201
    engine = _engine(app)
    with app.app_context():
        alembic.downgrade("0007")
        assert [s.revision for s in alembic.current()] == ["0007"]
    inspector = sa.inspect(engine)
    assert "sessions" not in inspector.get_table_names()
    with app.app_context():
        alembic.upgrade()
        assert alembic.compare_metadata() == []
    _assert_error(rep.get("/me"), 401, "unauthorized")
    rep.login()
    assert [c["name"] for c in rep.get("/clients").json["items"]] == ["Kept Through It"]
    assert len(rep.get(f"/clients/{client['id']}/touches").json["items"]) == 1
