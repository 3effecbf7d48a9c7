"""The production setup of docs/deploy.md, run for real: gunicorn with docs/deploy/gunicorn.conf.py.

- Without its shared secrets, production mode refuses to start, saying what is missing.
- With them, every line on stderr is JSON (gunicorn's and the app's), each request is logged
  with the proxy's X-Request-ID, the session cookie is Secure, /healthz answers and /metrics
  answers only with its token.

On SQLite, in a temporary instance folder: the point is the processes and their settings.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from webapp.config import new_vapid_key

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "docs" / "deploy" / "gunicorn.conf.py"
BIN = Path(sys.executable).parent
TOKEN = "t" * 40


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def production_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOUCHBASE_")}
    env.update(
        {
            "TOUCHBASE_ENV": "production",
            "TOUCHBASE_INSTANCE_PATH": str(tmp_path / "instance"),
            "TOUCHBASE_DATABASE_URL": f"sqlite:///{tmp_path / 'touchbase.db'}",
            "TOUCHBASE_BIND": f"127.0.0.1:{_free_port()}",
            "WEB_CONCURRENCY": "2",
        }
    )
    return env


def _gunicorn(env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", str(CONF), "wsgi:app"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=out,
        )


def test_production_refuses_to_start_without_its_secrets(production_env, tmp_path):
    log = tmp_path / "gunicorn.log"
    proc = _gunicorn(production_env, log)
    try:
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert code != 0, text
    assert "Refusing to start in production" in text
    for name in ("TOUCHBASE_SECRET_KEY", "TOUCHBASE_VAPID_PRIVATE_KEY", "TOUCHBASE_VAPID_SUBJECT"):
        assert name in text
    # Nothing secret was made up on disk.
    instance = tmp_path / "instance"
    assert not (instance / "secret_key").exists()
    assert not (instance / "vapid_private_key.pem").exists()


def _call(base: str, path: str, headers: dict[str, str] | None = None, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def test_production_host_logs_json_and_serves_health(production_env, tmp_path):
    env = {
        **production_env,
        "TOUCHBASE_SECRET_KEY": "k" * 48,
        "TOUCHBASE_VAPID_PRIVATE_KEY": new_vapid_key(),
        "TOUCHBASE_VAPID_SUBJECT": "mailto:it@example.com",
        "TOUCHBASE_METRICS_TOKEN": TOKEN,
        "TOUCHBASE_PROXY_FIX": "1",
    }
    subprocess.run(
        [str(BIN / "flask"), "--app", "webapp", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    log = tmp_path / "gunicorn.log"
    proc = _gunicorn(env, log)
    base = "http://" + env["TOUCHBASE_BIND"]
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                status, _, body = _call(base, "/healthz", {"X-Request-ID": "lb-check-1"})
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.1)
        assert status == 200, body
        assert json.loads(body)["status"] == "ok"

        # Behind the TLS proxy: the session cookie is Secure, HttpOnly and SameSite=Lax.
        status, headers, body = _call(base, "/api/v1/csrf", {"X-Forwarded-Proto": "https"})
        assert status == 200
        cookie = headers["Set-Cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
        # Production cookies are Secure even when the proxy forgot to say it was HTTPS.
        _, headers, _ = _call(base, "/api/v1/csrf")
        assert "Secure" in headers["Set-Cookie"]

        assert _call(base, "/metrics")[0] == 401
        status, _, body = _call(base, "/metrics", {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200
        assert b"touchbase_reminders_late 0.0" in body
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    lines = [line for line in log.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is JSON, or this fails
    assert any(
        r.get("logger") == "gunicorn.error" and "Listening at" in r["message"] for r in records
    )
    health = [
        r for r in records if r.get("logger") == "touchbase.request" and r["path"] == "/healthz"
    ]
    assert health and health[0]["request_id"] == "lb-check-1"
    assert health[0]["status"] == 200
    assert not [r for r in records if r.get("logger") == "gunicorn.access"]  # said once, not twice
    assert {r["level"] for r in records} <= {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
    # The single-process warning about rate limits shows up: no Redis was configured here.
    assert any("RATELIMIT_STORAGE_URI" in r["message"] for r in records)
