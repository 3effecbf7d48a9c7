"""``flask --app webapp backup PATH`` while the app writes, and the documented restore.

The round trip: two reps with clients, a call log, promises and a phone subscribed to push; a
thread keeps logging calls while the backup runs; the backup is restored into a fresh instance
the way the README says (SQLite: the file copied in as ``instance/touchbase.db``; PostgreSQL:
``pg_restore`` into a new database), migrated, and started. Everything written before the backup
began is there, the restored data is one consistent moment (a touch and its client's counters
together), the app works on it, and an outbox replay of a call the backup holds is still
recognised (200, not a second row).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import PASSWORD, PG_URL, Rep
from tests.push.fake_service import browser_keys
from webapp import create_app
from webapp.extensions import alembic
from webapp.services.backup import TABLES, libpq_conninfo

WAIT = 60.0


def _seed(rep: Rep, other: Rep) -> None:
    for i in range(6):
        client = rep.add_client(f"Kept Client {i}", phone=f"+1312555{i:04d}", tags=["A"], notes="é")
        assert rep.touch(client["id"], "reached", note="spoke").status_code == 201
        if i % 2:
            promise = rep.touch(client["id"], "left_message", callback_at="2031-01-02T15:00:00Z")
            assert promise.status_code == 201
    assert other.add_client("Other's Client")["id"]
    endpoint = f"https://fcm.googleapis.com/fcm/send/{uuid.uuid4()}"
    sub = {"endpoint": endpoint, "keys": browser_keys()}
    assert rep.post("/push/subscriptions", sub).status_code == 201


def _rows(engine: sa.Engine) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {
            table: [tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY id"))]
            for table in TABLES
        }


class Writer(threading.Thread):
    """Logs a call every moment on one client, as a busy rep would, until stopped."""

    def __init__(self, rep: Rep, client_id: str) -> None:
        super().__init__(daemon=True)
        self.client = rep.client.application.test_client()
        self.client.set_cookie(
            "touchbase_session", rep.client.get_cookie("touchbase_session").value
        )
        self.headers = {"X-CSRFToken": rep.token}
        self.client_id = client_id
        self.sent: list[str] = []
        self.acked: list[str] = []
        self.failures: list[Any] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            touch_id = str(uuid.uuid4())
            self.sent.append(touch_id)
            body = {"id": touch_id, "client_id": self.client_id, "outcome": "no_answer"}
            try:
                resp = self.client.post("/api/v1/touches", json=body, headers=self.headers)
            except BaseException as exc:
                self.failures.append(exc)
                return
            if resp.status_code == 201:
                self.acked.append(touch_id)
            else:
                self.failures.append((resp.status_code, resp.get_data(as_text=True)))

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + WAIT
        while len(self.acked) < count:
            assert not self.failures, self.failures
            assert time.monotonic() < deadline, f"the writer logged {len(self.acked)} calls"
            time.sleep(0.01)


def _restore(dump: Path, app: Any, tmp_path: Path, monkeypatch: Any, cleanup: list) -> Any:
    """Restore ``dump`` into a fresh instance as the README says; the app built on it."""
    instance = tmp_path / "restored-instance"
    instance.mkdir()
    monkeypatch.setenv("TOUCHBASE_INSTANCE_PATH", str(instance))
    url = app.extensions["sqlalchemy"].engine.url
    if url.get_backend_name() == "sqlite":
        shutil.copy(dump, instance / "touchbase.db")
        for stale in ("touchbase.db-wal", "touchbase.db-shm"):
            (instance / stale).unlink(missing_ok=True)
        config = {}  # the default: instance/touchbase.db
    else:
        name = f"touchbase_restore_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        cleanup.append(lambda: _drop_database(admin, name))
        target = url.set(database=name)
        done = subprocess.run(
            ["pg_restore", "--no-owner", "--dbname", libpq_conninfo(target), str(dump)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        config = {"DATABASE_URL": target.render_as_string(hide_password=False)}
    restored = create_app({**config, "TESTING": True, "PASSWORD_HASH_METHOD": "scrypt:1024:8:1"})
    cleanup.insert(0, restored.extensions["sqlalchemy"].engine.dispose)
    with restored.app_context():
        alembic.upgrade()  # `flask --app webapp db upgrade`: a no-op here, needed for older ones
        assert [s.revision for s in alembic.current()] == [s.revision for s in alembic.heads()]
    return restored


def _drop_database(admin: sa.Engine, name: str) -> None:
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.dispose()


def _log_in(app: Any, email: str) -> Rep:
    client = app.test_client()
    token = client.get("/api/v1/csrf").json["csrf_token"]
    resp = client.post(
        "/api/v1/auth/login",
        json={"email": email, "password": PASSWORD},
        headers={"X-CSRFToken": token},
    )
    assert resp.status_code == 200, resp.json
    return Rep(client, resp.json["user"], resp.json["csrf_token"])


def test_backup_while_writing_and_restore_into_a_fresh_instance(
    app, rep, other_rep, tmp_path, monkeypatch
):
    _seed(rep, other_rep)
    busy = rep.add_client("Busy Line")["id"]
    writer = Writer(rep, busy)
    writer.start()
    cleanup: list = []
    try:
        writer.wait_for(15)
        acked_before = set(writer.acked)
        dump = tmp_path / "touchbase.backup"
        result = app.test_cli_runner().invoke(args=["backup", str(dump)])
        assert result.exit_code == 0, result.output
        writer.wait_for(len(writer.acked) + 15)  # and the app kept writing after it
    finally:
        writer.halt.set()
        writer.join(WAIT)
    assert not writer.failures, writer.failures
    assert "Backed up to" in result.output and "secret_key" in result.output
    assert not list(tmp_path.glob(".touchbase.backup.partial*"))

    original = _rows(app.extensions["sqlalchemy"].engine)
    try:
        restored_app = _restore(dump, app, tmp_path, monkeypatch, cleanup)
        restored = _rows(restored_app.extensions["sqlalchemy"].engine)

        # Everything but the busy client's call log is exactly as it was.
        def steady(rows: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
            return {
                "users": rows["users"],
                "clients": [r for r in rows["clients"] if r[0] != busy],
                "touches": [r for r in rows["touches"] if busy not in r],
                "callbacks": rows["callbacks"],
                "push_subscriptions": rows["push_subscriptions"],
            }

        assert steady(restored) == steady(original)
        assert len(restored["push_subscriptions"]) == 1
        # The busy log: all that was acknowledged before the backup, nothing never sent, and
        # one moment's worth: the client's counter agrees with the touches stored with it.
        busy_touches = {r[0] for r in restored["touches"] if busy in r}
        assert acked_before <= busy_touches <= set(writer.sent)
        assert len(busy_touches) < len(writer.acked)
        with restored_app.extensions["sqlalchemy"].engine.connect() as conn:
            attempts = conn.execute(
                sa.text("SELECT attempts_since_reached FROM clients WHERE id = :id"), {"id": busy}
            ).scalar_one()
        assert attempts == len(busy_touches)

        # The app starts on it and works; each rep sees their own data, as before.
        a = _log_in(restored_app, rep.user["email"])

        def listed(who: Rep) -> list[dict[str, Any]]:
            return [c for c in who.get("/clients?limit=500").json["items"] if c["id"] != busy]

        assert listed(a) == listed(rep) and len(listed(a)) == 6
        assert a.get("/callbacks").json == rep.get("/callbacks").json
        b = _log_in(restored_app, other_rep.user["email"])
        assert [c["name"] for c in b.get("/clients").json["items"]] == ["Other's Client"]
        # A phone replaying a call the backup holds is told it is a replay, not given a copy.
        replay = {"id": sorted(acked_before)[0], "client_id": busy, "outcome": "no_answer"}
        assert a.post("/touches", replay).status_code == 200
        assert a.touch(busy, "reached").status_code == 201
        assert a.get(f"/clients/{busy}").json["attempts_since_reached"] == 0
    finally:
        for step in cleanup:
            step()


def test_backup_never_overwrites_unless_forced(app, rep, tmp_path):
    dump = tmp_path / "b.backup"
    dump.write_bytes(b"an older backup")
    runner = app.test_cli_runner()
    refused = runner.invoke(args=["backup", str(dump)])
    assert refused.exit_code != 0 and "already exists" in refused.output
    assert dump.read_bytes() == b"an older backup"
    forced = runner.invoke(args=["backup", "--force", str(dump)])
    assert forced.exit_code == 0, forced.output
    assert dump.read_bytes() != b"an older backup"
    nowhere = runner.invoke(args=["backup", str(tmp_path / "missing" / "b.backup")])
    assert nowhere.exit_code != 0


@pytest.mark.skipif(not PG_URL, reason="the PostgreSQL lane (TEST_DATABASE_URL)")
def test_without_pg_dump_the_command_says_what_to_run(pg_url, tmp_path, monkeypatch):
    monkeypatch.setenv("TOUCHBASE_INSTANCE_PATH", str(tmp_path / "instance"))
    app = create_app({"DATABASE_URL": pg_url, "TESTING": True})
    try:
        monkeypatch.setenv("PATH", str(tmp_path))  # no pg_dump on it
        dump = tmp_path / "b.dump"
        result = app.test_cli_runner().invoke(args=["backup", str(dump)])
        assert result.exit_code == 1
        assert "pg_dump is not installed here" in result.output
        schema = f"touchbase_test_{os.getpid()}"
        assert f"pg_dump --format=custom --file {dump} --dbname" in result.output
        assert f"--schema {schema}" in result.output
        assert not dump.exists()
    finally:
        app.extensions["sqlalchemy"].engine.dispose()
