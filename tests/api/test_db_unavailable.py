"""The database goes away under load and comes back: 503 in the error shape, then recovery.

The shared PostgreSQL server is not restarted (other test runs use it). The app talks to it
through a loopback proxy (``tcp_proxy.py``) that the test cuts, which is what a restart looks
like from the app: open connections die mid-query, new ones are refused. While it is cut, every
API answer is a 2xx or a 503 ``{"error": {"code": "unavailable", ...}}`` with Retry-After, never
a 500, a stack trace or an HTML page. Once it is back, the app serves again by itself (the pool
pre-pings and replaces dead connections): no restart, nothing repaired by hand. A touch answered
503 may or may not have been committed; sent again, as the phone's outbox does, it is stored
once (the id is an idempotency key).

PostgreSQL lane only (``TEST_DATABASE_URL``): SQLite has no server to lose.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa

from tests.api.tcp_proxy import TcpProxy
from tests.conftest import PG_URL, TABLES, Rep, register_rep
from webapp import create_app

pytestmark = pytest.mark.skipif(not PG_URL, reason="the PostgreSQL lane (TEST_DATABASE_URL)")

THREADS = 3
WAIT = 60.0  # seconds to wait for something that should happen in well under one
SETTLE = 2.0  # seconds after the first success in which a straggling 503 is forgiven


@dataclass
class Answer:
    started: float
    op: str
    status: int
    body: Any
    mimetype: str
    text: str
    retry_after: str | None
    sent: dict[str, Any] | None = None  # the touch's body, to send again


@dataclass
class Load:
    """Threads driving the API like a few phones at once, each on its own connection."""

    rep: Rep
    client_ids: list[str]
    answers: list[Answer] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, n: int) -> None:
        client = self.rep.client.application.test_client()
        cookie = self.rep.client.get_cookie("touchbase_session")
        client.set_cookie("touchbase_session", cookie.value)
        headers = {"X-CSRFToken": self.rep.token}
        i = 0
        try:
            while not self.stop.is_set():
                i += 1
                started = time.monotonic()
                body = None
                if i % 3 == 0:
                    op, resp = "today", client.get("/api/v1/today")
                elif i % 3 == 1:
                    body = {
                        "id": str(uuid.uuid4()),
                        "client_id": self.client_ids[(n + i) % len(self.client_ids)],
                        "outcome": "no_answer",
                    }
                    op = "touch"
                    resp = client.post("/api/v1/touches", json=body, headers=headers)
                else:
                    op, resp = "clients", client.get("/api/v1/clients")
                answer = Answer(
                    started,
                    op,
                    resp.status_code,
                    resp.get_json(silent=True),
                    resp.mimetype,
                    resp.get_data(as_text=True),
                    resp.headers.get("Retry-After"),
                    body,
                )
                with self.lock:
                    self.answers.append(answer)
        except BaseException as exc:  # an exception the app did not turn into an answer
            self.errors.append(exc)

    def since(self, moment: float) -> list[Answer]:
        with self.lock:
            return [a for a in self.answers if a.started >= moment]

    def wait_for(self, what: str, test: Any) -> None:
        deadline = time.monotonic() + WAIT
        while not test():
            assert not self.errors, self.errors
            assert time.monotonic() < deadline, f"waited {WAIT} s for {what}"
            time.sleep(0.02)


@pytest.fixture
def proxied(pg_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An app on this worker's PostgreSQL schema, reached through a proxy the test can cut."""
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {TABLES} CASCADE")
    engine.dispose()
    url = sa.engine.make_url(pg_url)
    with TcpProxy((url.host or "127.0.0.1", url.port or 5432)) as proxy:
        monkeypatch.setenv("TOUCHBASE_INSTANCE_PATH", str(tmp_path / "instance"))
        app = create_app(
            {
                "DATABASE_URL": url.set(host="127.0.0.1", port=proxy.port).render_as_string(
                    hide_password=False
                ),
                "TESTING": True,
                "PASSWORD_HASH_METHOD": "scrypt:1024:8:1",
            }
        )
        yield app, proxy, pg_url
        app.extensions["sqlalchemy"].engine.dispose()


def assert_unavailable(answer: Answer) -> None:
    """A 503 in the API's error shape: JSON, no HTML, no traceback, a Retry-After."""
    where = (answer.op, answer.status, answer.text[:500])
    assert answer.status == 503, where
    assert answer.mimetype == "application/json", where
    assert "Traceback" not in answer.text and "<html" not in answer.text.lower(), where
    assert set(answer.body) == {"error"}, where
    assert answer.body["error"]["code"] == "unavailable", where
    assert answer.body["error"]["message"], where
    # No driver message, host, port or SQL reaches the client.
    for leak in ("psycopg", "connection", "127.0.0.1", "SELECT", "INSERT"):
        assert leak not in answer.text, where
    assert answer.retry_after is not None and int(answer.retry_after) > 0, where


def test_database_cut_under_load_answers_503_then_recovers_by_itself(proxied):
    app, proxy, direct_url = proxied
    rep = register_rep(app)
    client_ids = [rep.add_client(f"Client {i}")["id"] for i in range(4)]
    load = Load(rep, client_ids)
    threads = [threading.Thread(target=load.run, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    try:
        load.wait_for("answers before the cut", lambda: len(load.since(0)) >= 30)

        cut_at = time.monotonic()
        proxy.cut()
        load.wait_for(
            "503s while the database is away",
            lambda: sum(a.status == 503 for a in load.since(cut_at)) >= 3 * THREADS,
        )
        # The shell does not need the database: the phone can still open the app.
        assert app.test_client().get("/").status_code == 200
        # The load balancer's health check says so, and takes this host out of rotation.
        health = app.test_client().get("/healthz")
        assert health.status_code == 503, health.json
        assert health.json == {"status": "unavailable", "database": "unreachable"}
        down = load.since(time.monotonic())
        load.wait_for("answers while cut", lambda: len(load.since(cut_at)) >= 20)

        restored_at = time.monotonic()
        proxy.restore()
        load.wait_for(
            "a 2xx after the database came back",
            lambda: any(a.status < 300 for a in load.since(restored_at)),
        )
        first_ok = min(a.started for a in load.since(restored_at) if a.status < 300)
        assert app.test_client().get("/healthz").json["status"] == "ok"
        load.wait_for("30 answers after recovery", lambda: len(load.since(first_ok + SETTLE)) >= 30)
    finally:
        load.stop.set()
        for t in threads:
            t.join(timeout=WAIT)
    assert not load.errors, load.errors

    during = [a for a in load.answers if cut_at <= a.started < restored_at]
    for answer in load.answers:
        if answer.status >= 300:
            assert_unavailable(answer)
    assert all(a.status == 503 for a in down), [(a.op, a.status) for a in down]
    assert {a.op for a in during if a.status == 503} == {"touch", "today", "clients"}
    # Recovered by itself: soon after the first success, everything succeeds. (On a loaded
    # machine a request that started in the same instant may still have drawn a connection the
    # cut killed, whose 503 the phone simply sends again: the full suite at load 9 once saw one.)
    settled = first_ok + SETTLE
    after = [a for a in load.answers if a.started >= settled]
    assert after, "no answers after the database settled"
    assert [a.status for a in after if a.status >= 300] == []
    assert proxy.accepted > 1  # the pool made new connections through the restored proxy

    # The phone sends again what got no 2xx: each touch is then stored exactly once.
    sent = {a.sent["id"]: a for a in load.answers if a.sent is not None}
    for answer in sent.values():
        if answer.status == 503:
            again = rep.post("/touches", answer.sent)
            assert again.status_code in (200, 201), again.json
    engine = sa.create_engine(direct_url)
    with engine.connect() as conn:
        stored = dict(conn.execute(sa.text("SELECT id, client_id FROM touches")).all())
        attempts = dict(
            conn.execute(sa.text("SELECT id, attempts_since_reached FROM clients")).all()
        )
    engine.dispose()
    assert set(stored) == set(sent)
    for client_id in client_ids:  # derived counters saw every stored touch once
        assert attempts[client_id] == sum(1 for c in stored.values() if c == client_id)


def test_a_connection_lost_after_the_answer_is_made_does_not_spoil_it(proxied):
    # A restart that lands between the view's answer and the end of the request: closing the
    # request's session fails, and that must not turn a good answer into a 500 (gunicorn would
    # send its own HTML error page for an exception escaping the app).
    app, proxy, _ = proxied
    cut_after = threading.Event()

    @app.after_request
    def cut(response: Any) -> Any:
        if cut_after.is_set():
            proxy.cut()
        return response

    rep = register_rep(app)
    made = rep.add_client("Dana Client")
    cut_after.set()
    listed = rep.get("/clients")
    assert listed.status_code == 200, listed.get_data(as_text=True)
    assert [c["id"] for c in listed.json["items"]] == [made["id"]]

    cut_after.clear()
    assert_unavailable(_answer(rep.get("/clients")))
    proxy.restore()
    assert rep.get("/clients").status_code == 200


def _answer(resp: Any) -> Answer:
    return Answer(
        0.0,
        "clients",
        resp.status_code,
        resp.get_json(silent=True),
        resp.mimetype,
        resp.get_data(as_text=True),
        resp.headers.get("Retry-After"),
    )
