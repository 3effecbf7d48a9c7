"""Accounts: register, log in, log out, settings, CSRF, rate limits, the 401 answer."""

from __future__ import annotations

import sqlalchemy as sa

from tests.conftest import register_rep


def _fresh(app):
    client = app.test_client()
    token = client.get("/api/v1/csrf").json["csrf_token"]
    return client, {"X-CSRFToken": token}


def test_register_logs_in_and_hashes_password(app):
    rep = register_rep(app, email="Ann@Example.com ", timezone="Pacific/Auckland")
    assert rep.user["email"] == "ann@example.com"
    assert rep.user["timezone"] == "Pacific/Auckland"
    assert rep.user["daily_goal"] == 10
    assert rep.user["quiet_hours"] == {"start": "21:00", "end": "08:00"}
    assert rep.user["reconnect_after_days"] == 90
    me = rep.get("/me")
    assert me.status_code == 200 and me.json["id"] == rep.user["id"]
    engine = app.extensions["sqlalchemy"].engine
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT password_hash FROM users")).scalar_one()
    assert "correct horse" not in stored and stored.startswith("scrypt:")


def test_register_conflicts_and_validation(app):
    register_rep(app, email="a@example.com")
    client, headers = _fresh(app)
    body = {"email": "A@example.com", "password": "long enough pw", "timezone": "UTC"}
    taken = client.post("/api/v1/auth/register", json=body, headers=headers)
    assert taken.status_code == 409 and taken.json["error"]["code"] == "conflict"
    bad = client.post(
        "/api/v1/auth/register",
        json={"email": "b@example.com", "password": "short", "timezone": "Mars/Base"},
        headers=headers,
    )
    assert bad.status_code == 422
    assert set(bad.json["error"]["fields"]) == {"password", "timezone"}


def test_login_logout_and_session_rotation(app):
    register_rep(app, email="a@example.com")
    client, headers = _fresh(app)
    before = client.get_cookie("touchbase_session").value
    resp = client.post(
        "/api/v1/auth/login",
        json={"email": "a@example.com", "password": "correct horse battery"},
        headers=headers,
    )
    assert resp.status_code == 200 and resp.json["user"]["email"] == "a@example.com"
    after = client.get_cookie("touchbase_session")
    assert after.value != before and after.http_only and after.same_site == "Lax"
    # The old token was tied to the old session; the answer carries a fresh one.
    token = {"X-CSRFToken": resp.json["csrf_token"]}
    assert client.get("/api/v1/me").status_code == 200
    assert client.post("/api/v1/auth/logout", headers=token).status_code == 204
    after_logout = client.get("/api/v1/me")
    assert after_logout.status_code == 401
    assert after_logout.json["error"]["code"] == "unauthorized"


def test_wrong_password_is_401(app):
    register_rep(app, email="a@example.com")
    client, headers = _fresh(app)
    for email in ("a@example.com", "nobody@example.com"):
        resp = client.post(
            "/api/v1/auth/login",
            json={"email": email, "password": "wrong password"},
            headers=headers,
        )
        assert resp.status_code == 401
        assert resp.json["error"]["message"] == "Wrong email or password."


def test_login_rate_limited_per_account(app):
    register_rep(app, email="a@example.com")
    client, headers = _fresh(app)
    bad = {"email": "a@example.com", "password": "wrong password"}
    for _ in range(10):
        assert client.post("/api/v1/auth/login", json=bad, headers=headers).status_code == 401
    # Even the right password waits now: the account is under attack.
    good = {"email": "a@example.com", "password": "correct horse battery"}
    limited = client.post("/api/v1/auth/login", json=good, headers=headers)
    assert limited.status_code == 429
    assert limited.json["error"]["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) > 0


def test_login_rate_limited_per_address(app):
    client, headers = _fresh(app)
    for i in range(10):
        body = {"email": f"user{i}@example.com", "password": "wrong password"}
        assert client.post("/api/v1/auth/login", json=body, headers=headers).status_code == 401
    body = {"email": "fresh@example.com", "password": "wrong password"}
    limited = client.post("/api/v1/auth/login", json=body, headers=headers)
    assert limited.status_code == 429 and "Retry-After" in limited.headers


def test_successful_logins_are_not_limited(app):
    register_rep(app, email="a@example.com")
    client, headers = _fresh(app)
    good = {"email": "a@example.com", "password": "correct horse battery"}
    for _ in range(12):
        resp = client.post("/api/v1/auth/login", json=good, headers=headers)
        assert resp.status_code == 200
        headers = {"X-CSRFToken": resp.json["csrf_token"]}


def test_csrf_required_and_long_lived(app, rep):
    missing = rep.client.post("/api/v1/clients", json={"name": "X"})
    assert missing.status_code == 400
    assert missing.json["error"]["code"] == "csrf_failed"
    wrong = rep.client.post("/api/v1/clients", json={"name": "X"}, headers={"X-CSRFToken": "nope"})
    assert wrong.status_code == 400
    # The token has no time limit: an outbox may replay hours later.
    assert app.config["WTF_CSRF_TIME_LIMIT"] is None
    assert rep.post("/clients", {"name": "X"}).status_code == 201


def test_api_answers_401_json_not_redirect(app):
    client = app.test_client()
    for path in ("/api/v1/me", "/api/v1/clients", "/api/v1/today", "/api/v1/callbacks"):
        resp = client.get(path)
        assert resp.status_code == 401, path
        assert resp.is_json and resp.json["error"]["code"] == "unauthorized"
        assert "Location" not in resp.headers


def test_patch_me(rep):
    resp = rep.patch(
        "/me",
        {
            "name": "Ann Rep",
            "timezone": "Pacific/Auckland",
            "daily_goal": 15,
            "quiet_hours": {"start": "22:00", "end": "07:30"},
            "reconnect_after_days": 60,
            "call_time": "08:30",
            "tiers": {"A": 14},
        },
    )
    assert resp.status_code == 200, resp.json
    user = resp.json
    assert user["name"] == "Ann Rep" and user["timezone"] == "Pacific/Auckland"
    assert user["daily_goal"] == 15 and user["reconnect_after_days"] == 60
    assert user["quiet_hours"] == {"start": "22:00", "end": "07:30"}
    assert user["call_time"] == "08:30"
    assert user["tiers"] == {"A": 14, "B": 90, "C": 180}
    off = rep.patch("/me", {"quiet_hours": None})
    assert off.json["quiet_hours"] is None
    assert rep.get("/me").json["quiet_hours"] is None


def test_habit_and_digest_settings(rep):
    user = rep.get("/me").json
    assert user["digest_time"] is None
    assert user["weekly_push"] is False and user["streak_weekends"] is False
    assert len(user["prompts"]) == 5 and "Any questions since we last spoke?" in user["prompts"]

    resp = rep.patch(
        "/me",
        {
            "digest_time": "07:45",
            "weekly_push": True,
            "streak_weekends": True,
            "prompts": ["  Ask about the spring range ", "", "How did the launch go?"],
        },
    )
    assert resp.status_code == 200, resp.json
    user = rep.get("/me").json
    assert user["digest_time"] == "07:45"
    assert user["weekly_push"] is True and user["streak_weekends"] is True
    assert user["prompts"] == ["Ask about the spring range", "How did the launch go?"]

    back = rep.patch("/me", {"digest_time": None, "prompts": None}).json
    assert back["digest_time"] is None
    assert len(back["prompts"]) == 5


def test_patch_me_rejects_bad_values(rep):
    cases = [
        {"timezone": "Not/AZone"},
        {"daily_goal": 0},
        {"daily_goal": "ten"},
        {"quiet_hours": {"start": "25:00", "end": "08:00"}},
        {"reconnect_after_days": -1},
        {"email": "new@example.com"},
        {"digest_time": "7am"},
        {"weekly_push": "yes"},
        {"streak_weekends": 1},
        {"prompts": []},
        {"prompts": "How are you?"},
        {"prompts": ["x" * 201]},
        {"prompts": ["p"] * 21},
    ]
    for body in cases:
        resp = rep.patch("/me", body)
        assert resp.status_code == 422, body
        assert resp.json["error"]["fields"], body
    assert rep.get("/me").json["timezone"] == "America/Chicago"
