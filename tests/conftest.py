"""Shared fixtures: a fresh app and database per test, on SQLite and (when asked) PostgreSQL.

``TEST_DATABASE_URL`` turns the PostgreSQL lane on. When it is set and the database cannot be
reached, the run fails at once: a PostgreSQL lane that quietly skips would prove nothing.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from webapp import (
    create_app,
    models,  # noqa: F401 (registers the tables)
)
from webapp.db import Base
from webapp.extensions import alembic

PG_URL = os.environ.get("TEST_DATABASE_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])
PASSWORD = "correct horse battery"
TABLES = ", ".join(t.name for t in reversed(Base.metadata.sorted_tables))


def _migrate(url: str, instance: str) -> None:
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "test"})
    with app.app_context():
        alembic.upgrade()
    app.extensions["sqlalchemy"].engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite file migrated to head once; each test gets a copy."""
    folder = tmp_path_factory.mktemp("template")
    os.environ["TOUCHBASE_INSTANCE_PATH"] = str(folder / "instance")
    path = folder / "template.db"
    _migrate(f"sqlite:///{path}", str(folder))
    return str(path)


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL schema of this test process's own, migrated to head once.

    The schema is named after the process, so parallel workers (and parallel runs on one
    machine) never share tables.
    """
    if not PG_URL:
        pytest.fail("the PostgreSQL lane needs TEST_DATABASE_URL")
    schema = f"touchbase_test_{os.getpid()}"
    admin = sa.create_engine(PG_URL)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    except sa.exc.OperationalError as exc:  # the loud failure CI relies on: every test errors
        admin.dispose()
        pytest.fail(f"TEST_DATABASE_URL is set but PostgreSQL cannot be reached: {exc}")
    sep = "&" if "?" in PG_URL else "?"
    url = f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    _migrate(url, str(tmp_path_factory.mktemp("pg")))
    yield url
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    admin.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A fresh, migrated, empty database for one test."""
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    url = request.getfixturevalue("pg_url")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {TABLES} CASCADE")
    engine.dispose()
    yield url


@pytest.fixture
def app(database_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """The app under test, on its own database and instance folder."""
    monkeypatch.setenv("TOUCHBASE_INSTANCE_PATH", str(tmp_path / "instance"))
    app = create_app(
        # A cheap scrypt keeps the suite fast; production keeps werkzeug's default cost.
        {"DATABASE_URL": database_url, "TESTING": True, "PASSWORD_HASH_METHOD": "scrypt:1024:8:1"}
    )
    yield app
    app.extensions["sqlalchemy"].engine.dispose()


class Rep:
    """A logged-in rep driving the API like the phone does: JSON, cookie, CSRF header."""

    def __init__(self, client: FlaskClient, user: dict[str, Any], token: str) -> None:
        self.client = client
        self.user = user
        self.token = token

    def call(self, method: str, path: str, json: Any = None, **kwargs: Any) -> Any:
        headers = {"X-CSRFToken": self.token, **kwargs.pop("headers", {})}
        if json is not None:
            kwargs["json"] = json
        return self.client.open("/api/v1" + path, method=method, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self.call("POST", path, json, **kwargs)

    def patch(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self.call("PATCH", path, json, **kwargs)

    def delete(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self.call("DELETE", path, json, **kwargs)

    def login(self) -> None:
        """Log in again (after time travel beyond the session's lifetime, say)."""
        token = self.client.get("/api/v1/csrf").json["csrf_token"]
        resp = self.client.post(
            "/api/v1/auth/login",
            json={"email": self.user["email"], "password": PASSWORD},
            headers={"X-CSRFToken": token},
        )
        assert resp.status_code == 200, resp.json
        self.token = resp.json["csrf_token"]

    def add_client(self, name: str = "Dana Client", **fields: Any) -> dict[str, Any]:
        resp = self.post("/clients", {"name": name, **fields})
        assert resp.status_code == 201, resp.json
        return resp.json

    def touch(self, client_id: str, outcome: str = "no_answer", **fields: Any) -> Any:
        body = {"id": str(uuid.uuid4()), "client_id": client_id, "outcome": outcome, **fields}
        return self.post("/touches", body)


def register_rep(
    app: Flask, email: str = "rep@example.com", timezone: str = "America/Chicago"
) -> Rep:
    """Register a new rep through the API and return it logged in."""
    client = app.test_client()
    token = client.get("/api/v1/csrf").json["csrf_token"]
    resp = client.post(
        "/api/v1/auth/register",
        json={
            "email": email,
            "password": "correct horse battery",
            "name": "Rep",
            "timezone": timezone,
        },
        headers={"X-CSRFToken": token},
    )
    assert resp.status_code == 201, resp.json
    return Rep(client, resp.json["user"], resp.json["csrf_token"])


@pytest.fixture
def rep(app: Flask) -> Rep:
    """A logged-in rep in Chicago."""
    return register_rep(app)


@pytest.fixture
def other_rep(app: Flask) -> Rep:
    """A second rep, who must never see the first one's data."""
    return register_rep(app, email="other@example.com", timezone="Europe/London")
