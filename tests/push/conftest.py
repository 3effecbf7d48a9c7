"""Push fixtures: a fake push service on 127.0.0.1, and an app whose allow-list names it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from tests.conftest import Rep
from tests.push.fake_service import FakePushService, Subscriber
from webapp import create_app
from webapp.dispatch import Dispatcher
from webapp.models import callbacks, utcnow


@pytest.fixture
def push_service() -> Iterator[FakePushService]:
    """A running fake push service (its VAPID key is set once the app exists)."""
    with FakePushService(None) as service:
        yield service
    assert service.errors == [], service.errors


@pytest.fixture
def app(
    database_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, push_service: Any
) -> Iterator[Flask]:
    """The app under test, allowed to push to the fake service (and only there)."""
    monkeypatch.setenv("TOUCHBASE_INSTANCE_PATH", str(tmp_path / "instance"))
    app = create_app(
        {
            "DATABASE_URL": database_url,
            "TESTING": True,
            "PASSWORD_HASH_METHOD": "scrypt:1024:8:1",
            "PUSH_ORIGINS": push_service.origin,
        }
    )
    push_service.vapid_public_key = app.extensions["touchbase_push"]["public_key"]
    yield app
    app.extensions["sqlalchemy"].engine.dispose()


@pytest.fixture
def dispatcher(app: Flask) -> Iterator[Dispatcher]:
    d = Dispatcher(app, batch=20, lease=30, concurrency=1)
    yield d
    d.close()


def no_quiet_hours(rep: Rep) -> None:
    assert rep.patch("/me", {"quiet_hours": None}).status_code == 200


def subscribe(rep: Rep, service: FakePushService) -> Subscriber:
    """A new browser of ``rep``'s, subscribed through the API."""
    sub = service.subscriber()
    resp = rep.post("/push/subscriptions", sub.subscription())
    assert resp.status_code == 201, resp.json
    return sub


def promise(
    app: Flask, rep: Rep, name: str = "Ada Lovelace", due: datetime | None = None
) -> dict[str, Any]:
    """A client of ``rep``'s with an open callback due at ``due`` (default: a second ago)."""
    client = rep.add_client(name)
    due = due or utcnow() - timedelta(seconds=1)
    resp = rep.touch(client["id"], "left_message", callback_at=due.isoformat())
    assert resp.status_code == 201, resp.json
    return {"client_id": client["id"], "callback_id": resp.json["callback_id"], "due": due}


def callback_row(app: Flask, callback_id: str) -> Any:
    engine = app.extensions["sqlalchemy"].engine
    with engine.connect() as conn:
        return conn.execute(sa.select(callbacks).where(callbacks.c.id == callback_id)).one()
