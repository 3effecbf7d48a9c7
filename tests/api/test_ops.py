"""Running it for a team (webapp/ops.py): /healthz, /metrics, production settings, JSON logs.

The real processes (gunicorn with docs/deploy/gunicorn.conf.py in production mode) are in
test_deploy.py; here the app runs in process, on both databases.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from webapp.config import load_settings, new_vapid_key
from webapp.models import callbacks, push_subscriptions, touches, utcnow

TOKEN = "m" * 40
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _engine(app):
    return app.extensions["sqlalchemy"].engine


def test_healthz_answers_ok_without_login(app):
    resp = app.test_client().get("/healthz")
    assert resp.status_code == 200
    assert resp.json["status"] == "ok"
    assert resp.json["database"] == "ok"
    assert resp.json["schema"] == app.extensions["touchbase_schema_head"]
    assert resp.headers["Cache-Control"] == "no-store"
    assert "touchbase_session" not in resp.headers.get("Set-Cookie", "")


def test_healthz_is_503_while_the_schema_is_behind_the_code(app):
    head = app.extensions["touchbase_schema_head"]
    with _engine(app).begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0001'"))
    resp = app.test_client().get("/healthz")
    assert resp.status_code == 503
    assert resp.json == {
        "status": "unavailable",
        "database": "ok",
        "schema": "0001",
        "expected": head,
    }
    with _engine(app).begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": head})
    assert app.test_client().get("/healthz").status_code == 200


def test_metrics_is_hidden_without_a_token(app):
    assert app.test_client().get("/metrics").status_code == 404


@pytest.mark.parametrize(
    "header", [None, "Bearer wrong", f"Bearer {TOKEN}x", TOKEN, f"bearer  {TOKEN}"]
)
def test_metrics_needs_the_exact_bearer_token(app, header):
    app.config["METRICS_TOKEN"] = TOKEN
    headers = {"Authorization": header} if header else {}
    resp = app.test_client().get("/metrics", headers=headers)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    assert b"touchbase" not in resp.data


def _figures(app) -> dict[str, float]:
    resp = app.test_client().get("/metrics", headers=AUTH)
    assert resp.status_code == 200
    assert resp.mimetype == "text/plain"
    out = {}
    for family in text_string_to_metric_families(resp.data.decode()):
        for sample in family.samples:
            label = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[sample.name + (f"{{{label}}}" if label else "")] = sample.value
    return out


def test_metrics_count_what_an_operator_must_watch(app, rep, other_rep):
    app.config["METRICS_TOKEN"] = TOKEN
    empty = _figures(app)
    assert empty["touchbase_reminders_late"] == 0
    assert empty["touchbase_outbox_lag_seconds_count"] == 0
    assert empty["touchbase_reps"] == 2

    now = utcnow()
    ids = {}
    # Five promises (a touch fulfils its client's open one, so one client each), each then put
    # into one state by hand, as the dispatcher would leave it.
    for name in ("late", "leased", "retrying", "failed", "future"):
        client = rep.add_client(f"Client {name}")["id"]
        callback_id = str(uuid.uuid4())
        resp = rep.touch(
            client,
            "left_message",
            callback_at=(now + timedelta(days=1)).isoformat(),
            callback_id=callback_id,
        )
        assert resp.status_code == 201, resp.json
        ids[name] = callback_id
    due = now - timedelta(minutes=10)
    states = {
        "late": {"due_at": due},
        "leased": {"due_at": due, "claimed_until": now + timedelta(seconds=60)},
        "retrying": {"due_at": now - timedelta(seconds=5), "send_attempts": 2},
        "failed": {"due_at": due, "last_error": "no device is subscribed"},
        "future": {"due_at": now + timedelta(hours=1)},
    }
    # Another rep's call synced late: logged on the phone 5 minutes before it arrived.
    other_client = other_rep.add_client("Otto")["id"]
    lagged = str(uuid.uuid4())
    resp = other_rep.post(
        "/touches",
        {
            "id": lagged,
            "client_id": other_client,
            "outcome": "reached",
            "happened_at": (now - timedelta(minutes=5)).isoformat(),
        },
    )
    assert resp.status_code == 201, resp.json
    with _engine(app).begin() as conn:
        # Only the open promises made above; the touch that fulfilled nothing stays as it is.
        for name, values in states.items():
            conn.execute(callbacks.update().where(callbacks.c.id == ids[name]).values(**values))
        conn.execute(
            push_subscriptions.insert(),
            [
                {
                    "id": str(uuid.uuid4()),
                    "user_id": rep.user["id"],
                    "endpoint": f"https://push.example.com/{n}",
                    "p256dh": "k",
                    "auth": "a",
                    "created_at": now,
                    "updated_at": now,
                    "failures": n,
                }
                for n in (0, 3)
            ],
        )
        # An old call that arrived long ago does not count toward the last hour's lag.
        conn.execute(
            touches.update()
            .where(touches.c.user_id == rep.user["id"])
            .values(created_at=now - timedelta(hours=3), happened_at=now - timedelta(hours=5))
        )

    figures = _figures(app)
    assert figures["touchbase_reminders_late"] == 1  # not the leased, retrying-soon or future one
    assert 590 <= figures["touchbase_reminders_late_oldest_seconds"] <= 700
    assert figures["touchbase_reminders_retrying"] == 1
    assert figures["touchbase_reminders_failed"] == 1
    assert figures["touchbase_push_subscriptions"] == 2
    assert figures["touchbase_push_subscriptions_failing"] == 1
    assert figures["touchbase_outbox_lag_seconds_count"] == 1
    assert 299 <= figures["touchbase_outbox_lag_seconds{quantile=0.5}"] <= 330
    assert figures["touchbase_outbox_lag_seconds{quantile=0.99}"] == pytest.approx(
        figures["touchbase_outbox_lag_seconds{quantile=0.5}"]
    )


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in (
        "SECRET_KEY",
        "VAPID_PRIVATE_KEY",
        "VAPID_SUBJECT",
        "ENV",
        "LOG_FORMAT",
        "METRICS_TOKEN",
    ):
        monkeypatch.delenv(f"TOUCHBASE_{name}", raising=False)
    return tmp_path


def test_production_refuses_to_start_without_the_shared_secrets(clean_env, monkeypatch):
    monkeypatch.setenv("TOUCHBASE_ENV", "production")
    with pytest.raises(RuntimeError) as err:
        load_settings(str(clean_env))
    message = str(err.value)
    assert message.startswith("Refusing to start in production")
    for name in ("TOUCHBASE_SECRET_KEY", "TOUCHBASE_VAPID_PRIVATE_KEY", "TOUCHBASE_VAPID_SUBJECT"):
        assert name in message
    # Nothing was made up in the instance folder either.
    assert list(clean_env.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "value", "complaint"),
    [
        ("SECRET_KEY", "short", "shorter than 32"),
        ("VAPID_SUBJECT", "mailto:admin@localhost", "real contact"),
    ],
)
def test_production_refuses_weak_settings(clean_env, monkeypatch, name, value, complaint):
    monkeypatch.setenv("TOUCHBASE_ENV", "production")
    monkeypatch.setenv("TOUCHBASE_SECRET_KEY", "s" * 48)
    monkeypatch.setenv("TOUCHBASE_VAPID_PRIVATE_KEY", new_vapid_key())
    monkeypatch.setenv("TOUCHBASE_VAPID_SUBJECT", "mailto:it@example.com")
    monkeypatch.setenv(f"TOUCHBASE_{name}", value)
    with pytest.raises(RuntimeError, match=complaint):
        load_settings(str(clean_env))


def test_production_settings(clean_env, monkeypatch):
    monkeypatch.setenv("TOUCHBASE_ENV", "Production")
    monkeypatch.setenv("TOUCHBASE_SECRET_KEY", "s" * 48)
    monkeypatch.setenv("TOUCHBASE_VAPID_PRIVATE_KEY", new_vapid_key())
    monkeypatch.setenv("TOUCHBASE_VAPID_SUBJECT", "mailto:it@example.com")
    settings = load_settings(str(clean_env))
    assert settings["ENVIRONMENT"] == "production"
    assert settings["SESSION_COOKIE_SECURE"] is True
    assert settings["LOG_FORMAT"] == "json"
    assert settings["SECRET_KEY"] == "s" * 48
    assert not (clean_env / "secret_key").exists()


def test_development_is_the_default_and_needs_nothing(clean_env):
    settings = load_settings(str(clean_env))
    assert settings["ENVIRONMENT"] == "development"
    assert settings["SESSION_COOKIE_SECURE"] is False
    assert settings["LOG_FORMAT"] == "text"
    assert (clean_env / "secret_key").exists()


@pytest.mark.parametrize(("name", "value"), [("ENV", "staging"), ("LOG_FORMAT", "xml")])
def test_unknown_modes_are_refused(clean_env, monkeypatch, name, value):
    monkeypatch.setenv(f"TOUCHBASE_{name}", value)
    with pytest.raises(RuntimeError, match=f"TOUCHBASE_{name}"):
        load_settings(str(clean_env))


def test_json_logs_carry_the_request(database_url, tmp_path, monkeypatch, capsys):
    from webapp import create_app

    monkeypatch.setenv("TOUCHBASE_INSTANCE_PATH", str(tmp_path / "instance"))
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        app = create_app({"DATABASE_URL": database_url, "LOG_FORMAT": "json"})
        client = app.test_client()
        resp = client.get("/healthz", headers={"X-Request-ID": "req-42"})
        assert resp.status_code == 200
        logging.getLogger("webapp.test").warning("a %s event", "notable")
        app.extensions["sqlalchemy"].engine.dispose()
    finally:
        root.handlers, _ = saved
        root.setLevel(saved[1])
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    request_line = next(line for line in lines if line.get("logger") == "touchbase.request")
    assert request_line["message"] == "GET /healthz 200"
    assert request_line["status"] == 200
    assert request_line["path"] == "/healthz"
    assert request_line["request_id"] == "req-42"
    assert request_line["duration_ms"] >= 0
    assert request_line["level"] == "INFO"
    assert "time" in request_line
    event = next(line for line in lines if line.get("logger") == "webapp.test")
    assert event["message"] == "a notable event"
    assert event["level"] == "WARNING"
