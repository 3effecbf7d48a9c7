"""Several dispatcher processes on one PostgreSQL database: no double sends, nothing lost.

These run only on the PostgreSQL lane (``TEST_DATABASE_URL``, which CI sets): SQLite's claim is
a single-writer UPDATE and is covered by the single-process tests. Each dispatcher is a real
``flask --app webapp dispatch`` process; the fake push service in this process decrypts every
push and records which callback it carried.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import PG_URL, TABLES
from tests.push.fake_service import FakePushService, seed_due_callbacks
from webapp import create_app
from webapp.models import callbacks

pytestmark = pytest.mark.skipif(not PG_URL, reason="the PostgreSQL lane (TEST_DATABASE_URL)")

ROOT = Path(__file__).resolve().parents[2]
REPS = 50


@pytest.fixture
def pg_app(pg_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An app on this worker's PostgreSQL schema, emptied, with a fake push service."""
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {TABLES} CASCADE")
    engine.dispose()
    instance = tmp_path / "instance"
    monkeypatch.setenv("TOUCHBASE_INSTANCE_PATH", str(instance))
    with FakePushService(None) as service:
        app = create_app({"DATABASE_URL": pg_url, "TESTING": True, "PUSH_ORIGINS": service.origin})
        service.vapid_public_key = app.extensions["touchbase_push"]["public_key"]
        env = {
            **os.environ,
            "TOUCHBASE_DATABASE_URL": pg_url,
            "TOUCHBASE_PUSH_ORIGINS": service.origin,
            "TOUCHBASE_INSTANCE_PATH": str(instance),
        }
        yield app, service, env
        app.extensions["sqlalchemy"].engine.dispose()
    assert service.errors == [], service.errors[:5]


def seed(app: Any, service: FakePushService, count: int) -> list[str]:
    """``count`` callbacks, all due, spread over ``REPS`` reps with one browser each."""
    rows, _subs = seed_due_callbacks(app, service, count, reps=REPS)
    return [row["id"] for row in rows]


def dispatcher(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "flask", "--app", "webapp", "dispatch", *args]
    return subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE)


def notified(app: Any) -> int:
    with app.extensions["sqlalchemy"].engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count()).where(callbacks.c.notified_at.is_not(None))
        ).scalar_one()


def test_four_dispatchers_push_each_of_5000_exactly_once(pg_app):
    app, service, env = pg_app
    ids = seed(app, service, 5000)
    procs = [
        dispatcher(env, "--once", "--batch", "50", "--lease", "30", "--concurrency", "2")
        for _ in range(4)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-2000:]
    sent = Counter(p.payload["callback_id"] for p in service.accepted())
    assert set(sent) == set(ids), f"missed {len(set(ids) - set(sent))}"
    assert [cid for cid, n in sent.items() if n > 1] == []
    assert notified(app) == 5000


def test_a_dispatcher_killed_mid_batch_loses_nothing(pg_app):
    app, service, env = pg_app
    ids = seed(app, service, 1000)
    service.delay = 0.004  # a batch of 50 takes a moment: the kill lands inside one
    batch, lease = 50, "2"
    victim = dispatcher(env, "--batch", str(batch), "--lease", lease, "--concurrency", "1")
    deadline = time.time() + 60
    while len(service.received()) < 120 and time.time() < deadline:
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    before = len(service.received())
    assert 0 < before < 1000, before

    survivor = dispatcher(
        env, "--batch", str(batch), "--lease", lease, "--interval", "0.5", "--concurrency", "1"
    )
    try:
        deadline = time.time() + 60
        while notified(app) < 1000 and time.time() < deadline:
            time.sleep(0.1)
    finally:
        survivor.send_signal(signal.SIGTERM)
        survivor.communicate(timeout=30)
    assert notified(app) == 1000
    sent = Counter(p.payload["callback_id"] for p in service.accepted())
    assert set(sent) == set(ids)
    # Only the killed batch's pushes, sent but not yet recorded, can have gone out twice.
    assert sum(n - 1 for n in sent.values()) <= batch
    # And a repeat is the same message to the phone: the same Topic (the push service replaces
    # one not yet delivered) and the same notification tag (the phone replaces one it shows).
    for callback_id in (cid for cid, n in sent.items() if n > 1):
        pushes = [p for p in service.accepted() if p.payload["callback_id"] == callback_id]
        assert len({p.headers["topic"] for p in pushes}) == 1
        assert len({json.dumps(p.payload, sort_keys=True) for p in pushes}) == 1
