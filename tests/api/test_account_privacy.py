"""Privacy and sessions (issue 7): a rep exports everything and deletes their account; a logout
really ends the session, everywhere at once.

Sessions are rows (``sessions``) that the signed cookie names. Checked here, on both databases:

- a copy of the cookie is dead the moment its session logs out; "log out everywhere" ends every
  session of the rep and nobody else's; logging in again ends the session the cookie had;
- a cookie from before the sessions table (it names the rep, not a session) is simply logged
  out; the per-request load is one select, by primary key on both tables;
- sessions nobody has used for longer than a cookie lives are pruned at the next login, and a
  session in use is marked seen once a day;
- ``DELETE /me`` with the password deletes every row of the rep's in every table of the
  database (counted table by table) and nothing of anyone else's; a wrong password deletes
  nothing, answers 403 in the error shape and counts toward the login's rate limit;
- ``GET /export/account.json`` is one JSON download holding all of the rep's rows and no
  secret (password hash, push keys, session ids, the calendar token), and nothing of another
  rep's;
- migration 0008 goes down and up again without losing data.
"""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import PASSWORD, Rep, register_rep
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


def _fill(rep: Rep, endpoint: str, tag: str) -> dict[str, Any]:
    """Clients (one archived), calls, an open and a kept promise, a browser, a calendar feed."""
    first = rep.add_client(f"{tag} First", phone="312-555-0101", tags=["A"])
    second = rep.add_client(f"{tag} Second", notes="private notes")
    gone = rep.add_client(f"{tag} Archived")
    assert rep.touch(first["id"], "reached", note=f"{tag} note").status_code == 201
    promise = rep.touch(first["id"], "left_message", callback_at="2031-01-02T15:00:00+00:00")
    assert promise.status_code == 201
    kept = rep.touch(second["id"], "no_answer", callback_at="2030-01-02T15:00:00+00:00")
    assert rep.touch(second["id"], "reached").status_code == 201  # keeps that promise
    assert rep.delete(f"/clients/{gone['id']}").status_code == 204
    keys = browser_keys()
    assert rep.post("/push/subscriptions", {"endpoint": endpoint, "keys": keys}).status_code == 201
    feed = rep.get("/calendar")
    assert feed.status_code == 200
    assert (
        rep.patch("/me", {"prompts": [f"{tag} prompt"], "digest_time": "07:30"}).status_code == 200
    )
    return {
        "clients": {first["id"], second["id"], gone["id"]},
        "callbacks": {promise.json["callback_id"], kept.json["callback_id"]},
        "keys": keys,
        "feed": feed.json["url"],
    }


def _rows_of(app, user_id: str) -> dict[str, list[tuple]]:
    """Every row that belongs to the rep, in every table the database has (not only the ones
    the app's models know): ``users`` by id, every other table by its ``user_id``."""
    engine = _engine(app)
    found: dict[str, list[tuple]] = {}
    inspector = sa.inspect(engine)
    with engine.connect() as conn:
        for table in inspector.get_table_names():
            columns = {c["name"] for c in inspector.get_columns(table)}
            if table == "users":
                where = "id = :u"
            elif "user_id" in columns:
                where = "user_id = :u"
            else:
                continue
            rows = conn.execute(sa.text(f"SELECT * FROM {table} WHERE {where}"), {"u": user_id})
            found[table] = sorted(tuple(map(str, row)) for row in rows)
    return found


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
    # At once, and for every kind of request: a read, a write, the hot path, an export.
    _assert_error(thief.get("/me"), 401, "unauthorized")
    _assert_error(thief.post("/clients", {"name": "Planted"}), 401, "unauthorized")
    client_id = str(uuid.uuid4())
    _assert_error(thief.touch(client_id, "reached"), 401, "unauthorized")
    _assert_error(thief.get("/export/account.json"), 401, "unauthorized")
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


def test_the_per_request_load_survives_the_engine_being_disposed_meanwhile(app, rep):
    # engine.dispose() closes pooled connections, and db.KeptConnections' connections too, from
    # the disposing thread. The session lookup runs on every request, so it must only ever use
    # connections that closing cannot pull from under it (a kept SQLite connection closed
    # mid-query crashed the process). Four threads read while the main thread disposes.
    cookie = rep.client.get_cookie(COOKIE).value
    statuses: list[int] = []
    stop = threading.Event()

    def read() -> None:
        client = app.test_client()
        client.set_cookie(COOKIE, cookie)
        while not stop.is_set():
            statuses.append(client.get(f"{API}/me").status_code)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        _engine(app).dispose()
        time.sleep(0.002)
    stop.set()
    for thread in threads:
        thread.join()
    assert len(statuses) > 100 and set(statuses) == {200}


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


# ---- deleting the account -------------------------------------------------------------------


def test_deleting_the_account_removes_every_row_of_the_rep_and_nothing_else(app, rep, other_rep):
    mine = _fill(rep, A_ENDPOINT, "Ann")
    theirs = _fill(other_rep, B_ENDPOINT, "Bea")
    phone = _login(app)  # a second session of the rep's
    before_a, before_b = _rows_of(app, rep.user["id"]), _rows_of(app, other_rep.user["id"])
    # Every table of the rep's has something in it, so "0 left" below means something.
    assert {t for t, rows in before_a.items() if rows} >= {
        "users",
        "clients",
        "touches",
        "callbacks",
        "push_subscriptions",
        "sessions",
    }
    assert {t for t, rows in before_a.items() if not rows} == set()

    resp = rep.delete("/me", {"password": PASSWORD})
    assert resp.status_code == 204 and resp.get_data() == b""
    assert rep.client.get_cookie(COOKIE) is None

    assert _rows_of(app, rep.user["id"]) == {table: [] for table in before_a}
    assert _rows_of(app, other_rep.user["id"]) == before_b
    # Nothing of the rep's is left anywhere in the text of the database either.
    with _engine(app).connect() as conn:
        for table in before_a:
            dump = str(conn.execute(sa.text(f"SELECT * FROM {table}")).all())
            for secret in (rep.user["id"], "Ann First", "Ann note", A_ENDPOINT, *mine["clients"]):
                assert secret not in dump, (table, secret)
    # Every session ended, the calendar feed is gone, and the other rep works as before.
    _assert_error(phone.get("/me"), 401, "unauthorized")
    feed_path = "/" + mine["feed"].split("://", 1)[1].split("/", 1)[1]
    assert app.test_client().get(feed_path).status_code == 404
    other_feed = "/" + theirs["feed"].split("://", 1)[1].split("/", 1)[1]
    assert app.test_client().get(other_feed).status_code == 200
    assert len(other_rep.get("/clients").json["items"]) == 2
    # The email is free again: a new account, empty.
    fresh = register_rep(app)
    assert fresh.user["id"] != rep.user["id"]
    assert fresh.get("/clients").json["items"] == []


def test_a_wrong_password_deletes_nothing_and_counts_as_a_failed_login(app, rep):
    _fill(rep, A_ENDPOINT, "Ann")
    before = _rows_of(app, rep.user["id"])
    for _ in range(10):
        wrong = rep.delete("/me", {"password": "not my password"})
        _assert_error(wrong, 403, "wrong_password")
    assert _rows_of(app, rep.user["id"]) == before
    assert rep.get("/me").status_code == 200  # still logged in
    # The eleventh try waits, even with the right password; and so does logging in to this
    # account, from anywhere (the per-account count), while other accounts elsewhere do not.
    limited = rep.delete("/me", {"password": PASSWORD})
    _assert_error(limited, 429, "rate_limited")
    assert int(limited.headers["Retry-After"]) > 0
    elsewhere = _other_address(app)
    _assert_error(elsewhere("rep@example.com", PASSWORD), 429, "rate_limited")
    _assert_error(elsewhere("someone@example.com", "a guess"), 401, "invalid_credentials")
    assert _rows_of(app, rep.user["id"]) == before


def _other_address(app):
    """Log in attempts from another address than the test client's usual 127.0.0.1."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "192.0.2.7"
    token = client.get(f"{API}/csrf").json["csrf_token"]

    def login(email: str, password: str):
        body = {"email": email, "password": password}
        return client.post(f"{API}/auth/login", json=body, headers={"X-CSRFToken": token})

    return login


def test_failed_logins_count_toward_deleting_too(app, rep):
    # Ten wrong passwords for this account from elsewhere: the rep's own phone (another
    # address) cannot try more through DELETE /me either.
    elsewhere = _other_address(app)
    for _ in range(10):
        assert elsewhere("rep@example.com", "guess").status_code == 401
    _assert_error(rep.delete("/me", {"password": "another guess"}), 429, "rate_limited")
    assert rep.get("/me").status_code == 200


@pytest.mark.parametrize(
    "body",
    [None, {}, {"password": None}, {"password": 12345}, {"password": "x" * 1025}, ["pw"]],
    ids=["no body", "empty", "null", "number", "too long", "list"],
)
def test_deleting_needs_the_password_in_a_json_body(app, rep, body):
    resp = rep.delete("/me", body)
    assert resp.status_code == 422, resp.json
    assert set(resp.json) == {"error"} and resp.json["error"]["code"] == "invalid"
    assert rep.get("/me").status_code == 200


def test_deleting_needs_a_session_and_the_csrf_token(app, rep):
    anonymous = app.test_client()
    token = anonymous.get(f"{API}/csrf").json["csrf_token"]
    nobody = anonymous.delete(
        f"{API}/me", json={"password": PASSWORD}, headers={"X-CSRFToken": token}
    )
    _assert_error(nobody, 401, "unauthorized")
    no_token = rep.client.delete(f"{API}/me", json={"password": PASSWORD})
    _assert_error(no_token, 400, "csrf_failed")
    text = rep.client.delete(
        f"{API}/me",
        data=PASSWORD,
        content_type="text/plain",
        headers={"X-CSRFToken": rep.token},
    )
    assert text.status_code == 415
    assert rep.get("/me").status_code == 200


# ---- the export -----------------------------------------------------------------------------


def _export(rep: Rep) -> tuple[Any, dict[str, Any]]:
    resp = rep.get("/export/account.json")
    assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
    return resp, json.loads(resp.get_data(as_text=True))


def test_the_export_holds_all_of_the_reps_data_and_nothing_else(app, rep, other_rep):
    mine = _fill(rep, A_ENDPOINT, "Ann")
    _fill(other_rep, B_ENDPOINT, "Bea")
    resp, doc = _export(rep)
    assert resp.mimetype == "application/json"
    assert resp.headers["Content-Disposition"] == 'attachment; filename="touchbase-account.json"'
    assert resp.headers["Cache-Control"] == "no-store"
    assert (doc["format"], doc["version"]) == ("touchbase-account", 1)
    assert datetime.fromisoformat(doc["exported_at"]).tzinfo is not None
    assert set(doc) == {
        "format",
        "version",
        "exported_at",
        "account",
        "clients",
        "touches",
        "callbacks",
        "push_subscriptions",
        "sessions",
    }

    account = doc["account"]
    assert account == {**rep.get("/me").json, **{k: account[k] for k in _ACCOUNT_ONLY}}
    assert account["prompts"] == ["Ann prompt"] and account["digest_time"] == "07:30"
    assert account["calendar_feed_since"] is not None and account["created_at"]

    # Every row of the rep's, archived clients and kept promises included, as stored.
    rows = _rows_of(app, rep.user["id"])
    assert {c["id"] for c in doc["clients"]} == mine["clients"] == {r[0] for r in rows["clients"]}
    archived = [c for c in doc["clients"] if c["archived_at"]]
    assert [c["name"] for c in archived] == ["Ann Archived"]
    assert {t["id"] for t in doc["touches"]} == {r[0] for r in rows["touches"]}
    assert len(doc["touches"]) == 4
    assert {c["id"] for c in doc["callbacks"]} == mine["callbacks"]
    assert {c["status"] for c in doc["callbacks"]} == {"open", "done"}
    first = next(c for c in doc["clients"] if c["name"] == "Ann First")
    assert first["tags"] == ["A"] and first["phone"]
    listed = rep.get(f"/clients/{first['id']}").json
    assert {k: first[k] for k in first} == {k: listed[k] for k in first}
    assert doc["push_subscriptions"] == [
        {"endpoint": A_ENDPOINT, "created_at": doc["push_subscriptions"][0]["created_at"]}
    ]
    assert len(doc["sessions"]) == 1 and set(doc["sessions"][0]) == {"created_at", "seen_on"}

    # No secret that would open anything, and nothing of the other rep's.
    text = resp.get_data(as_text=True)
    (session_id,) = (s.id for s in _sessions(app, rep.user["id"]))
    for secret in (
        mine["keys"]["p256dh"],
        mine["keys"]["auth"],
        session_id,
        "scrypt:",
        mine["feed"].rsplit("/", 1)[1].removesuffix(".ics"),
        "Bea",
        other_rep.user["id"],
        B_ENDPOINT,
    ):
        assert secret not in text, secret


_ACCOUNT_ONLY = ("created_at", "digest_sent_on", "weekly_sent_on", "calendar_feed_since")


def test_the_export_of_an_empty_account_is_valid_json(app, rep):
    _, doc = _export(rep)
    assert doc["clients"] == doc["touches"] == doc["callbacks"] == []
    assert doc["push_subscriptions"] == [] and len(doc["sessions"]) == 1
    assert doc["account"]["email"] == "rep@example.com"


def test_the_export_streams_big_accounts_in_batches(app, rep):
    # More rows than a batch, with text that needs escaping: still one valid document, with
    # every row once, sent as several chunks rather than built whole.
    lines = [f'"Client {i:04d}","line ""{i}""\nnext \\u00e9 \u2028 end"' for i in range(1200)]
    data = io.BytesIO("\n".join(["name,notes", *lines]).encode())
    resp = rep.post(
        "/import", data={"file": (data, "many.csv")}, content_type="multipart/form-data"
    )
    assert resp.status_code == 200 and resp.json["created"] == 1200, resp.json
    streamed = rep.client.get(f"{API}/export/account.json", buffered=False)
    try:
        chunks = [chunk for chunk in streamed.response if chunk]
    finally:
        streamed.close()
    assert len(chunks) >= 3
    doc = json.loads(b"".join(c if isinstance(c, bytes) else c.encode() for c in chunks))
    names = [c["name"] for c in doc["clients"]]
    assert names == sorted(names) and len(set(names)) == 1200
    assert doc["clients"][7]["notes"] == 'line "7"\nnext \\u00e9 \u2028 end'


def test_the_export_needs_a_session(app, rep):
    _assert_error(app.test_client().get(f"{API}/export/account.json"), 401, "unauthorized")


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
    assert "ix_callbacks_touch" not in {i["name"] for i in inspector.get_indexes("callbacks")}
    with app.app_context():
        alembic.upgrade()
        assert alembic.compare_metadata() == []
    _assert_error(rep.get("/me"), 401, "unauthorized")
    rep.login()
    assert [c["name"] for c in rep.get("/clients").json["items"]] == ["Kept Through It"]
    assert len(rep.get(f"/clients/{client['id']}/touches").json["items"]) == 1
