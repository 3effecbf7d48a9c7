"""Two web hosts and two dispatchers on one PostgreSQL database: nothing lost, nothing doubled.

The scale-out deployment in miniature (``bench/scale_out.py`` measures it under heavy load): two
gunicorn processes on two ports, each with an instance folder of its own but the same
``TOUCHBASE_SECRET_KEY`` and ``TOUCHBASE_VAPID_PRIVATE_KEY``, and two ``flask --app webapp
dispatch`` processes, all on this test process's PostgreSQL schema. Two reps with two phones each
send a mixed load at once, the phones of one rep on different hosts and every request to the
other host than the one before: calls on clients both phones share (so both hosts write to one
client at the same moment), promises of a callback due a second later, replays of calls already
answered, today's list and the client list. Then:

- every answer is a 2xx; every touch was answered 201 once and is stored once; every replay was
  answered 200 with the same touch and added nothing;
- every promised callback was pushed exactly once (the fake push service decrypts each push and
  counts it per callback id) and is marked notified, though two dispatchers raced for it;
- each client's derived fields (last touch, attempts since reached) agree with its touches.

PostgreSQL lane only (``TEST_DATABASE_URL``), like the other multi-process PostgreSQL tests: it
skips without it, and fails when it is set but the server cannot be reached (``pg_url``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import PASSWORD, PG_URL, TABLES
from tests.push.fake_service import FakePushService
from webapp.models import utcnow
from webapp.services.push import public_key

pytestmark = pytest.mark.skipif(not PG_URL, reason="the PostgreSQL lane (TEST_DATABASE_URL)")

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
WAIT = 60.0  # seconds to wait for something that should happen in a second or two
REPS = 2
PHONES = 2  # per rep, on different hosts
REQUESTS = 60  # per phone
SHARED_CLIENTS = 3  # per rep, called from both phones
PROMISES = 6  # per phone, each on a client of its own (a later call would keep the promise)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Answer:
    host: str
    op: str
    status: int
    body: Any
    sent: dict[str, Any] | None = None  # a touch's body


@dataclass
class Deployment:
    """The hosts' base URLs, the dispatchers, the push service and the database."""

    hosts: list[str]
    dispatchers: list[subprocess.Popen[bytes]]
    service: FakePushService
    engine: sa.Engine
    logs: list[Path]


def _vapid_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + WAIT
    while True:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            # The port is open before the worker has imported the app: the first answer waits.
            if requests.get(url + "/api/v1/csrf", timeout=WAIT).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@pytest.fixture
def deployment(pg_url: str, tmp_path: Path) -> Iterator[Deployment]:
    """Two hosts and two dispatchers on this worker's PostgreSQL schema, emptied first."""
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {TABLES} CASCADE")
    pem = _vapid_pem()
    with FakePushService(public_key(pem)) as service:
        shared = {
            **os.environ,
            "TOUCHBASE_DATABASE_URL": pg_url,
            "TOUCHBASE_SECRET_KEY": uuid.uuid4().hex,
            "TOUCHBASE_VAPID_PRIVATE_KEY": pem,
            "TOUCHBASE_PUSH_ORIGINS": service.origin,
        }
        procs: list[subprocess.Popen[bytes]] = []
        logs: list[Path] = []

        def start(name: str, command: list[str]) -> subprocess.Popen[bytes]:
            log = tmp_path / f"{name}.log"
            env = {**shared, "TOUCHBASE_INSTANCE_PATH": str(tmp_path / f"instance-{name}")}
            with log.open("wb") as out:
                proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
            procs.append(proc)
            logs.append(log)
            return proc

        try:
            ports = [_free_port(), _free_port()]
            hosts = [
                start(
                    f"host-{n}",
                    [
                        str(BIN / "gunicorn"),
                        "--bind",
                        f"127.0.0.1:{port}",
                        "--workers",
                        "1",
                        "--no-control-socket",  # (a shared one in $HOME would be fought over)
                        "wsgi:app",
                    ],
                )
                for n, port in enumerate(ports)
            ]
            dispatch = [str(BIN / "flask"), "--app", "webapp", "dispatch", "--interval", "0.5"]
            dispatchers = [start(f"dispatcher-{n}", dispatch) for n in range(2)]
            urls = [f"http://127.0.0.1:{port}" for port in ports]
            for url, proc, log in zip(urls, hosts, logs[:2], strict=True):
                _wait_ready(url, proc, log)
            yield Deployment(urls, dispatchers, service, engine, logs)
        finally:
            for proc in procs:
                _stop(proc)
            engine.dispose()
    assert service.errors == [], service.errors[:3]


@dataclass
class Rep:
    """A rep's cookie and CSRF token (valid on either host) and clients."""

    cookie: str
    token: str
    shared: list[str]
    promise: list[str]


def _register(n: int, host: str, service: FakePushService) -> Rep:
    http = requests.Session()
    token = http.get(host + "/api/v1/csrf", timeout=30).json()["csrf_token"]

    def post(path: str, body: Any, method: str = "POST") -> Any:
        resp = http.request(
            method, host + "/api/v1" + path, json=body, headers={"X-CSRFToken": token}, timeout=30
        )
        assert resp.status_code in (200, 201), resp.text
        return resp.json()

    user = {"email": f"rep{n}@example.com", "password": PASSWORD, "name": "Rep", "timezone": "UTC"}
    token = post("/auth/register", user)["csrf_token"]
    post("/me", {"quiet_hours": None}, method="PATCH")  # reminders at any hour of the run
    post("/push/subscriptions", service.subscriber().subscription())
    shared = [post("/clients", {"name": f"Shared {n}.{i}"})["id"] for i in range(SHARED_CLIENTS)]
    promise = [
        post("/clients", {"name": f"Promise {n}.{i}"})["id"] for i in range(PROMISES * PHONES)
    ]
    return Rep(f"touchbase_session={http.cookies['touchbase_session']}", token, shared, promise)


@dataclass
class Phone:
    """One phone of a rep, sending ``REQUESTS`` requests, alternating between the hosts."""

    rep: Rep
    hosts: list[str]
    first: int  # index of the host it starts on
    promise: list[str]
    answers: list[Answer] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def run(self, start: threading.Barrier) -> None:
        http = requests.Session()
        headers = {"Cookie": self.rep.cookie, "X-CSRFToken": self.rep.token}
        promises = iter(self.promise)
        answered: list[dict[str, Any]] = []
        try:
            start.wait()
            for i in range(REQUESTS):
                host = self.hosts[(self.first + i) % 2]
                body = None
                if i % 10 == 3:
                    op, resp = "today", http.get(host + "/api/v1/today", headers=headers)
                elif i % 10 == 7:
                    op, resp = "clients", http.get(host + "/api/v1/clients", headers=headers)
                elif i % 10 == 9 and answered:
                    op, body = "replay", answered[-2 if len(answered) > 1 else -1]
                else:
                    op = "touch"
                    body = {
                        "id": str(uuid.uuid4()),
                        "client_id": self.rep.shared[i % SHARED_CLIENTS],
                        "outcome": ("reached", "left_message", "no_answer")[i % 3],
                    }
                    client = next(promises, None) if i % 4 == 0 else None
                    if client is not None:
                        op = "promise"
                        due = utcnow() + timedelta(seconds=1)
                        body |= {
                            "client_id": client,
                            "callback_at": due.isoformat(),
                            "callback_id": str(uuid.uuid4()),
                        }
                if body is not None:
                    resp = http.post(host + "/api/v1/touches", json=body, headers=headers)
                    if op != "replay" and resp.status_code == 201:
                        answered.append(body)
                self.answers.append(
                    Answer(host, op, resp.status_code, resp.json() if resp.content else None, body)
                )
        except BaseException as exc:
            self.errors.append(exc)


def _callbacks(engine: sa.Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT id, status, notified_at, last_error FROM callbacks"
        ).all()
    return {row.id: row for row in rows}


def test_two_hosts_and_two_dispatchers_lose_and_double_nothing(deployment):
    a, b = deployment.hosts
    reps = [_register(n, (a, b)[n % 2], deployment.service) for n in range(REPS)]
    phones = [
        Phone(rep, [a, b], (n + k) % 2, rep.promise[k::PHONES])
        for n, rep in enumerate(reps)
        for k in range(PHONES)
    ]
    start = threading.Barrier(len(phones))
    threads = [threading.Thread(target=phone.run, args=(start,)) for phone in phones]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=WAIT)
    assert not any(thread.is_alive() for thread in threads)
    assert [e for phone in phones for e in phone.errors] == []
    answers = [answer for phone in phones for answer in phone.answers]
    assert len(answers) == REPS * PHONES * REQUESTS
    assert {answer.host for answer in answers} == {a, b}
    assert [(x.host, x.op, x.status, x.body) for x in answers if x.status >= 300] == []

    # Touches: each answered 201 once, stored once; each replay a 200 with the same touch.
    created = Counter(x.sent["id"] for x in answers if x.status == 201)
    replays = [x for x in answers if x.op == "replay"]
    assert replays and all(x.status == 200 and x.body["id"] == x.sent["id"] for x in replays)
    assert all(n == 1 for n in created.values())
    assert all(x.status == 201 for x in answers if x.op in ("touch", "promise"))
    with deployment.engine.connect() as conn:
        stored = Counter(conn.exec_driver_sql("SELECT id FROM touches").scalars())
    assert stored == created

    # Callbacks: every promise made one, and each is pushed exactly once, by either dispatcher.
    promised = {x.sent["callback_id"] for x in answers if x.op == "promise"}
    assert len(promised) == REPS * PHONES * PROMISES
    deadline = time.monotonic() + WAIT
    while any(
        row.notified_at is None and row.last_error is None
        for row in _callbacks(deployment.engine).values()
    ):
        assert time.monotonic() < deadline, "callbacks still unsent"
        time.sleep(0.1)
    rows = _callbacks(deployment.engine)
    assert set(rows) == promised
    assert all(row.status == "open" and row.last_error is None for row in rows.values())
    pushed = Counter(p.payload["callback_id"] for p in deployment.service.accepted())
    assert pushed == Counter(promised)

    # Derived fields: both hosts wrote to the same clients at once; each agrees with its log.
    with deployment.engine.connect() as conn:
        disagree = conn.exec_driver_sql(
            "SELECT c.id, c.last_touch_at, c.attempts_since_reached FROM clients c "
            "WHERE c.last_touch_at IS DISTINCT FROM "
            " (SELECT max(t.happened_at) FROM touches t WHERE t.client_id = c.id) "
            "OR c.attempts_since_reached <> (SELECT count(*) FROM touches t "
            " WHERE t.client_id = c.id AND t.outcome <> 'reached' AND t.happened_at > coalesce("
            "  (SELECT max(r.happened_at) FROM touches r "
            "   WHERE r.client_id = c.id AND r.outcome = 'reached'), '-infinity'))"
        ).all()
    assert disagree == []

    # Both dispatchers ran to the end and stop cleanly; no process logged a traceback.
    assert [_stop(proc) for proc in deployment.dispatchers] == [0, 0]
    for log in deployment.logs:
        text = log.read_text(errors="replace")
        assert "Traceback" not in text and "WORKER TIMEOUT" not in text, (log.name, text[-3000:])
