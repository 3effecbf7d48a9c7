"""The login limit holds across processes when they share Redis, and survives Redis going away.

Two real gunicorn processes ("hosts" on two ports, the deployment of docs/deploy.md in
miniature) serve one database with ``TOUCHBASE_RATELIMIT_STORAGE_URI`` pointing at Redis.
Failed logins alternate between them, so each host sees only half: the limit (10 failures a
minute per account and per address, API.md) still answers the 11th with 429 and Retry-After,
on both hosts. The same run with in-memory counts lets the 11th through: the control that shows
the shared store is what holds the line. Each run uses its own key prefix and deletes its keys.

``TEST_REDIS_URL`` (set by ``.ci/run``) turns the Redis tests on; set and unreachable, they fail,
never skip. Without Redis at all, a host whose Redis is unreachable keeps logins working and
still limited, each process counting on its own.

The hosts trust one proxy hop (``TOUCHBASE_PROXY_FIX=1``), so the test picks the caller's
address with ``X-Forwarded-For``, as a TLS proxy in front of them would.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("TEST_REDIS_URL")
PASSWORD = "correct horse battery"
LIMIT = 10

needs_redis = pytest.mark.skipif(not REDIS_URL, reason="the Redis lane (TEST_REDIS_URL)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Answer:
    status: int
    headers: Any
    body: Any


class Host:
    """One gunicorn process serving ``wsgi:app``, and a cookie-keeping client for it."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        command = [
            str(Path(sys.executable).with_name("gunicorn")),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            "1",
            "--no-control-socket",  # (a shared one in $HOME would be fought over)
            "wsgi:app",
        ]
        with log.open("wb") as out:
            self.proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, log.read_text()[-3000:]
            try:
                self.token = self.call("GET", "/api/v1/csrf").body["csrf_token"]
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.1)

    def call(
        self, method: str, path: str, body: Any = None, address: str = "198.51.100.1"
    ) -> Answer:
        headers = {"Accept": "application/json", "X-Forwarded-For": address}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if method != "GET":
            headers["X-CSRFToken"] = self.token
        request = urllib.request.Request(self.url + path, data, headers, method=method)
        try:
            with self.opener.open(request, timeout=30) as resp:
                return Answer(resp.status, resp.headers, json.loads(resp.read() or b"null"))
        except urllib.error.HTTPError as exc:
            with exc:
                return Answer(exc.code, exc.headers, json.loads(exc.read() or b"null"))

    def login(self, email: str, password: str, address: str) -> Answer:
        answer = self.call(
            "POST", "/api/v1/auth/login", {"email": email, "password": password}, address
        )
        if answer.status == 200:
            self.token = answer.body["csrf_token"]
        return answer

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    import redis

    assert REDIS_URL
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:  # the loud failure CI relies on
        pytest.fail(f"TEST_REDIS_URL is set but Redis cannot be reached: {exc}")
    prefix = f"touchbase-test-{uuid.uuid4().hex}"
    yield prefix
    keys = list(client.scan_iter(match=f"*{prefix}*"))
    if keys:
        client.delete(*keys)
    assert not list(client.scan_iter(match=f"*{prefix}*"))
    client.close()


@pytest.fixture
def start_hosts(sqlite_template: str, tmp_path: Path) -> Iterator[Any]:
    """``start_hosts(n, storage_uri, prefix)``: n gunicorn hosts on one database and instance."""
    database = tmp_path / "shared.db"
    shutil.copy(sqlite_template, database)
    started: list[Host] = []

    def start(count: int, storage_uri: str, prefix: str = "touchbase") -> list[Host]:
        env = {
            **os.environ,
            "TOUCHBASE_DATABASE_URL": f"sqlite:///{database}",
            "TOUCHBASE_INSTANCE_PATH": str(tmp_path / "instance"),
            "TOUCHBASE_RATELIMIT_STORAGE_URI": storage_uri,
            "TOUCHBASE_RATELIMIT_KEY_PREFIX": prefix,
            "TOUCHBASE_PROXY_FIX": "1",
        }
        for i in range(count):
            started.append(Host(env, tmp_path / f"host-{len(started)}-{i}.log"))
        return started[-count:]

    yield start
    for host in started:
        host.stop()


def _register(host: Host, email: str) -> None:
    body = {"email": email, "password": PASSWORD, "timezone": "UTC"}
    answer = host.call("POST", "/api/v1/auth/register", body)
    assert answer.status == 201, answer.body
    host.token = answer.body["csrf_token"]


def assert_limited(answer: Answer) -> None:
    assert answer.status == 429, (answer.status, answer.body)
    assert answer.body["error"]["code"] == "rate_limited"
    assert 0 < int(answer.headers["Retry-After"]) <= 60


@needs_redis
def test_the_login_limits_hold_across_two_hosts_sharing_redis(start_hosts, redis_prefix):
    a, b = start_hosts(2, REDIS_URL, redis_prefix)
    _register(a, "ann@example.com")
    # Per account: ten failures, alternating hosts, each from a new address.
    for i in range(LIMIT):
        host = (a, b)[i % 2]
        answer = host.login("ann@example.com", "wrong password", f"203.0.113.{i + 1}")
        assert answer.status == 401, (i, answer.body)
    for host in (a, b):
        assert_limited(host.login("ann@example.com", "wrong password", "203.0.113.99"))
    # The right password waits too: the account is under attack, wherever the next try lands.
    assert_limited(b.login("ann@example.com", PASSWORD, "192.0.2.7"))
    _register(b, "bea@example.com")  # another account is not affected
    assert a.login("bea@example.com", PASSWORD, "192.0.2.8").status == 200

    # Per address: ten failures from one address, alternating hosts, each on a new account.
    attacker = "203.0.113.50"
    for i in range(LIMIT):
        answer = (a, b)[i % 2].login(f"guess{i}@example.com", "wrong password", attacker)
        assert answer.status == 401, (i, answer.body)
    for host in (a, b):
        assert_limited(host.login("fresh@example.com", "wrong password", attacker))
    # Someone else, elsewhere, is not affected.
    assert b.login("fresh@example.com", "wrong password", "198.51.100.20").status == 401


def test_without_a_shared_store_each_host_counts_alone(start_hosts):
    # The control: with in-memory counts, the 11th failure is let through (each host saw five),
    # where the shared store answers 429. Alternating hosts doubles what an attacker gets.
    a, b = start_hosts(2, "memory://")
    for i in range(LIMIT + 1):
        answer = (a, b)[i % 2].login("ann@example.com", "wrong password", f"203.0.113.{i + 1}")
        assert answer.status == 401, (i, answer.body)


def test_with_redis_unreachable_logins_work_and_stay_limited(start_hosts):
    # Nothing listens on this port: Redis is down. Each process falls back to its own counts.
    (host,) = start_hosts(1, f"redis://127.0.0.1:{_free_port()}/0")
    _register(host, "ann@example.com")
    assert host.login("ann@example.com", PASSWORD, "192.0.2.1").status == 200
    for i in range(LIMIT):
        answer = host.login("ann@example.com", "wrong password", f"203.0.113.{i + 1}")
        assert answer.status == 401, (i, answer.body)
    assert_limited(host.login("ann@example.com", "wrong password", "203.0.113.99"))
