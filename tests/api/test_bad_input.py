"""Bad input of every kind gets a 4xx in the one error shape: never a 5xx, never an HTML page.

The error shape (API.md, Conventions) is ``{"error": {"code", "message", "fields"?}}``. Covered:
malformed and non-object JSON, JSON Python cannot decode, wrong types, unknown fields, bad UUIDs
in bodies and paths, timestamps without an offset or out of range, unknown time zones, over-long
strings, NUL characters (PostgreSQL text cannot hold them), forged cursors, a body over the size
limit, a body that is not JSON, unknown routes and wrong methods. Then the security headers on
every kind of answer, and the flags of the session cookie over HTTP, HTTPS and behind a proxy.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest

from tests.conftest import Rep
from webapp import create_app

API = "/api/v1"


@pytest.fixture
def ids(rep: Rep) -> dict[str, str]:
    """The rep's own client and open callback, so that paths with ids reach the body checks."""
    client = rep.add_client("Dana Client")
    promise = rep.touch(client["id"], "left_message", callback_at="2030-01-02T09:00:00+00:00")
    assert promise.status_code == 201, promise.json
    return {"client_id": client["id"], "callback_id": promise.json["callback_id"]}


def assert_security_headers(resp) -> None:
    csp = resp.headers.get("Content-Security-Policy", "")
    assert "unsafe-inline" not in csp, csp
    assert "frame-ancestors 'none'" in csp, csp
    assert "script-src 'self'" in csp or "default-src 'self'" in csp, csp
    assert resp.headers.get("X-Content-Type-Options") == "nosniff"
    assert resp.headers.get("Referrer-Policy") in {
        "no-referrer",
        "same-origin",
        "strict-origin",
        "strict-origin-when-cross-origin",
    }


def assert_error(
    resp, status: int, code: str | None = None, field: str | None = None, label: str = ""
) -> None:
    """``resp`` is ``status`` in the error shape, JSON, with the security headers."""
    text = resp.get_data(as_text=True)
    where = (label, resp.status_code, text[:500])
    assert resp.status_code == status, where
    assert resp.mimetype == "application/json", where
    assert "<html" not in text.lower(), where
    body = resp.json
    assert set(body) == {"error"}, where
    error = body["error"]
    assert set(error) <= {"code", "message", "fields"}, where
    assert isinstance(error["code"], str) and error["code"], where
    assert isinstance(error["message"], str) and error["message"], where
    if code is not None:
        assert error["code"] == code, where
    if "fields" in error:
        assert error["fields"], where
        for messages in error["fields"].values():
            assert messages and all(isinstance(m, str) and m for m in messages), where
    if field is not None:
        assert field in error.get("fields", {}), where
    assert_security_headers(resp)


def raw(rep: Rep, method: str, path: str, data: Any, content_type: str = "application/json"):
    """Send ``data`` as the body exactly as given, with the rep's cookie and CSRF header."""
    return rep.call(method, path, data=data, headers={"Content-Type": content_type})


# The routes that read a JSON body, with a body that is valid for them. Register logs the test
# client in as someone new and login logs it back in as the rep, so they come last.
BODY_ROUTES = {
    ("POST", "/clients"): {"name": "Ok Client"},
    ("PATCH", "/clients/{client_id}"): {"name": "Ok Client"},
    ("POST", "/callbacks/{callback_id}/snooze"): {"until": "2030-02-01T09:00:00+00:00"},
    # (After the snooze: a touch keeps the open promise, and a kept one cannot be snoozed.)
    ("POST", "/touches"): {"id": "<new>", "client_id": "<client>", "outcome": "reached"},
    ("PATCH", "/me"): {"name": "Ok Rep"},
    ("POST", "/auth/register"): {
        "email": "new@example.com",
        "password": "long enough pw",
        "timezone": "UTC",
    },
    ("POST", "/auth/login"): {"email": "rep@example.com", "password": "correct horse battery"},
}
ROUTE_IDS = [f"{m} {p}" for m, p in BODY_ROUTES]


def _valid_body(route: tuple[str, str], ids: dict[str, str]) -> dict[str, Any]:
    body = dict(BODY_ROUTES[route])
    if body.get("id") == "<new>":
        body.update(id=str(uuid.uuid4()), client_id=ids["client_id"])
    return body


def _path(route: tuple[str, str], ids: dict[str, str]) -> str:
    return route[1].format(**ids)


# Bodies that are not a JSON object at all, and what each must get.
NOT_AN_OBJECT = [
    pytest.param(b"{bad json", 400, id="malformed"),
    pytest.param(b'{"name": "x",}', 400, id="trailing-comma"),
    pytest.param(b'{"name": "\xff\xfe"}', 400, id="invalid-utf8"),
    pytest.param(b"[" * 50_000 + b"]" * 50_000, 400, id="nested-50000-deep"),
    pytest.param(b'{"cadence_days": ' + b"9" * 5000 + b"}", 400, id="5000-digit-integer"),
    pytest.param(b'["name", "x"]', 422, id="array"),
    pytest.param(b'"just a string"', 422, id="string"),
    pytest.param(b"42", 422, id="number"),
    pytest.param(b"null", 422, id="null"),
    pytest.param(b"true", 422, id="boolean"),
]


@pytest.mark.parametrize(("data", "status"), NOT_AN_OBJECT)
def test_body_that_is_not_a_json_object(rep, ids, data, status):
    for route in BODY_ROUTES:
        assert_error(raw(rep, route[0], _path(route, ids), data), status, label=str(route))
    # Valid bodies still work: the failures above were about the body, not the routes.
    for route in BODY_ROUTES:
        resp = rep.call(route[0], _path(route, ids), _valid_body(route, ids))
        assert resp.status_code < 300, (route, resp.json)
        # Register and login start a new session, with its own token.
        rep.token = resp.json.get("csrf_token", rep.token)


WRONG_FIELDS = [
    # (route, changes to the valid body, the field named in the answer)
    (("POST", "/clients"), {"cadence_days": "14"}, "cadence_days"),
    (("POST", "/clients"), {"cadence_days": True}, "cadence_days"),
    (("POST", "/clients"), {"cadence_days": 1.5}, "cadence_days"),
    (("POST", "/clients"), {"cadence_days": 10**30}, "cadence_days"),
    (("POST", "/clients"), {"name": ["Dana"]}, "name"),
    (("POST", "/clients"), {"name": {"first": "Dana"}}, "name"),
    (("POST", "/clients"), {"name": 42}, "name"),
    (("POST", "/clients"), {"name": None}, "name"),
    (("POST", "/clients"), {"tags": "vip"}, "tags"),
    (("POST", "/clients"), {"tags": [1, 2]}, "tags"),
    (("POST", "/clients"), {"email": "not an email"}, "email"),
    (("POST", "/clients"), {"owner_id": "someone"}, "owner_id"),
    (("POST", "/clients"), {"user_id": str(uuid.uuid4())}, "user_id"),
    (("POST", "/clients"), {"id": "not-a-uuid"}, "id"),
    (("POST", "/clients"), {"id": 12345}, "id"),
    (("PATCH", "/clients/{client_id}"), {"cadence_days": "7"}, "cadence_days"),
    (
        ("PATCH", "/clients/{client_id}"),
        {"archived_at": "2030-01-01T00:00:00+00:00"},
        "archived_at",
    ),
    (("POST", "/touches"), {"id": "nope"}, "id"),
    (("POST", "/touches"), {"id": ""}, "id"),
    (("POST", "/touches"), {"client_id": 7}, "client_id"),
    (("POST", "/touches"), {"client_id": None}, "client_id"),
    (
        ("POST", "/touches"),
        {"callback_id": "xyz", "callback_at": "2030-01-01T09:00:00Z"},
        "callback_id",
    ),
    (("POST", "/touches"), {"outcome": "voicemail"}, "outcome"),
    (("POST", "/touches"), {"outcome": 1}, "outcome"),
    (("POST", "/touches"), {"note": ["a"]}, "note"),
    (("POST", "/touches"), {"happened_at": 1767225600}, "happened_at"),
    (("POST", "/touches"), {"happened_at": "yesterday"}, "happened_at"),
    (("POST", "/touches"), {"user_id": str(uuid.uuid4())}, "user_id"),
    (("POST", "/callbacks/{callback_id}/snooze"), {"until": None}, "until"),
    (("POST", "/callbacks/{callback_id}/snooze"), {"until": "next week"}, "until"),
    (("POST", "/callbacks/{callback_id}/snooze"), {"status": "done"}, "status"),
    (("PATCH", "/me"), {"daily_goal": "10"}, "daily_goal"),
    (("PATCH", "/me"), {"daily_goal": True}, "daily_goal"),
    (("PATCH", "/me"), {"daily_goal": 2.5}, "daily_goal"),
    (("PATCH", "/me"), {"quiet_hours": "21:00-08:00"}, "quiet_hours"),
    (("PATCH", "/me"), {"quiet_hours": {"start": "9pm", "end": "08:00"}}, "quiet_hours"),
    (("PATCH", "/me"), {"tiers": {"Z": 5}}, "tiers"),
    (("PATCH", "/me"), {"email": "new@example.com"}, "email"),
    (("PATCH", "/me"), {"password": "a new password"}, "password"),
    (("POST", "/auth/register"), {"password": 1234567890123}, "password"),
    (("POST", "/auth/register"), {"email": ["a@example.com"]}, "email"),
    (("POST", "/auth/register"), {"is_admin": True}, "is_admin"),
    (("POST", "/auth/login"), {"password": None}, "password"),
    (("POST", "/auth/login"), {"remember": True}, "remember"),
]


@pytest.mark.parametrize("route", list(BODY_ROUTES), ids=ROUTE_IDS)
def test_wrong_types_and_unknown_fields_are_422(rep, ids, route):
    cases = [(changes, field) for r, changes, field in WRONG_FIELDS if r == route]
    assert cases
    for changes, field in cases:
        body = {**_valid_body(route, ids), **changes}
        resp = rep.call(route[0], _path(route, ids), body)
        assert_error(resp, 422, "invalid", field, label=repr(changes))


OFFSETLESS = ["2030-01-02T09:00:00", "2030-01-02 09:00", "2030-01-02"]


@pytest.mark.parametrize("stamp", OFFSETLESS)
def test_timestamps_without_an_offset_are_422(rep, ids, stamp):
    touch = _valid_body(("POST", "/touches"), ids)
    for field in ("happened_at", "callback_at"):
        assert_error(rep.post("/touches", {**touch, field: stamp}), 422, "invalid", field)
    snooze = f"/callbacks/{ids['callback_id']}/snooze"
    assert_error(rep.post(snooze, {"until": stamp}), 422, "invalid", "until")
    for path in ("/clients", "/callbacks"):
        resp = rep.get(path, query_string={"updated_since": stamp})
        assert_error(resp, 422, "invalid", "updated_since")
    # Nothing was written by the refused touches.
    assert len(rep.get(f"/clients/{ids['client_id']}/touches").json["items"]) == 1


# Valid ISO 8601 with an offset, but out of what Python's datetime can shift into a rep's zone.
EXTREME = ["0001-01-01T00:00:00+14:00", "0001-01-01T00:30:00+00:00", "9999-12-31T23:59:59-12:00"]


@pytest.mark.parametrize("stamp", EXTREME)
def test_timestamps_out_of_range_are_422(rep, ids, stamp):
    touch = _valid_body(("POST", "/touches"), ids)
    for field in ("happened_at", "callback_at"):
        assert_error(rep.post("/touches", {**touch, field: stamp}), 422, "invalid", field)
    snooze = f"/callbacks/{ids['callback_id']}/snooze"
    assert_error(rep.post(snooze, {"until": stamp}), 422, "invalid", "until")
    for path in ("/clients", "/callbacks"):
        resp = rep.get(path, query_string={"updated_since": stamp})
        assert_error(resp, 422, "invalid", "updated_since")
    assert rep.get("/today").status_code == 200


def test_unknown_time_zones_are_422(app, rep):
    for zone in ("Mars/Olympus_Mons", "CST", "America/chicago", "", "+05:00", "../etc/passwd"):
        assert_error(rep.patch("/me", {"timezone": zone}), 422, "invalid", "timezone")
        client = app.test_client()
        token = client.get(f"{API}/csrf").json["csrf_token"]
        resp = client.post(
            f"{API}/auth/register",
            json={"email": "tz@example.com", "password": "long enough pw", "timezone": zone},
            headers={"X-CSRFToken": token},
        )
        assert_error(resp, 422, "invalid", "timezone")
    assert rep.get("/me").json["timezone"] == "America/Chicago"


OVER_LONG = [
    (("POST", "/clients"), "name", "n" * 201),
    (("POST", "/clients"), "phone", "5" * 65),
    (("POST", "/clients"), "email", "a" * 250 + "@example.com"),
    (("POST", "/clients"), "company", "c" * 201),
    (("POST", "/clients"), "notes", "n" * 10_001),
    (("POST", "/clients"), "talking_points", "t" * 10_001),
    (("POST", "/clients"), "tags", ["t" * 51]),
    (("POST", "/clients"), "tags", [f"tag{i}" for i in range(51)]),
    (("PATCH", "/clients/{client_id}"), "name", "n" * 201),
    (("POST", "/touches"), "note", "n" * 10_001),
    (("PATCH", "/me"), "name", "n" * 201),
    (("POST", "/auth/register"), "password", "p" * 1025),
    (("POST", "/auth/register"), "email", "e" * 250 + "@example.com"),
    (("POST", "/auth/login"), "password", "p" * 1025),
]


def test_over_long_strings_are_422(rep, ids):
    for route, field, value in OVER_LONG:
        body = {**_valid_body(route, ids), field: value}
        resp = rep.call(route[0], _path(route, ids), body)
        assert_error(resp, 422, "invalid", field, label=f"{route} {field}")
    assert [c["id"] for c in rep.get("/clients").json["items"]] == [ids["client_id"]]


def test_over_long_query_values_are_422(rep):
    assert_error(rep.get("/clients", query_string={"q": "q" * 201}), 422, "invalid", "q")
    for path in ("/clients", "/callbacks"):
        resp = rep.get(path, query_string={"cursor": "c" * 1001})
        assert_error(resp, 422, "invalid", "cursor")
        for limit in ("0", "501", "-1", "ten", "1e3", ""):
            resp = rep.get(path, query_string={"limit": limit})
            assert_error(resp, 422, "invalid", "limit")
    assert_error(rep.get("/callbacks", query_string={"status": "maybe"}), 422, "invalid", "status")


def test_nul_characters_are_422_on_every_database(rep, ids):
    for route in BODY_ROUTES:
        body = _valid_body(route, ids)
        field = next(k for k, v in body.items() if isinstance(v, str) and not k.endswith("id"))
        resp = rep.call(route[0], _path(route, ids), {**body, field: "Da\x00na"})
        assert_error(resp, 422, "invalid", field, label=str(route))
        # In an unknown field's name too.
        resp = rep.call(route[0], _path(route, ids), {**body, "x\x00": 1})
        assert_error(resp, 422, "invalid", label=str(route))
    # Deeper in the body: a touch's note, a tag, quiet hours.
    touch = {**_valid_body(("POST", "/touches"), ids), "note": "\x00"}
    assert_error(rep.post("/touches", touch), 422, "invalid", "note")
    assert_error(rep.post("/clients", {"name": "T", "tags": ["a\x00"]}), 422, "invalid", "tags")
    quiet = {"quiet_hours": {"start": "21:00\x00", "end": "08:00"}}
    assert_error(rep.patch("/me", quiet), 422, "invalid", "quiet_hours")
    assert len(rep.get(f"/clients/{ids['client_id']}/touches").json["items"]) == 1


def test_nul_characters_in_the_query_are_422(rep, ids):
    for path, name in (("/clients", "q"), ("/clients", "cursor"), ("/callbacks", "status")):
        assert_error(rep.get(path, query_string={name: "a\x00b"}), 422, "invalid", name)
    assert (
        rep.get("/clients", query_string={"q": "Dana"}).json["items"][0]["id"] == (ids["client_id"])
    )


def _cursor(values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


FORGED_CURSORS = [
    pytest.param("garbage!", id="not-base64"),
    pytest.param(_cursor({"a": 1}), id="object"),
    pytest.param(_cursor([]), id="empty-list"),
    pytest.param(_cursor(["a", "b", "c"]), id="too-long"),
    pytest.param(_cursor([{"a": 1}, [1]]), id="objects-inside"),
    pytest.param(_cursor([5, 7]), id="numbers-for-text"),
    pytest.param(_cursor([True, None]), id="bool-and-null"),
    pytest.param(_cursor(["Dana\x00", "x"]), id="nul-in-text"),
]
# Lists sorted by an instant (sync, a client's touches, callbacks) need one there.
FORGED_INSTANT_CURSORS = [
    pytest.param(_cursor(["2030-01-01T00:00:00", "x"]), id="naive-instant"),
    pytest.param(_cursor(["0001-01-01T00:00:00+05:00", "x"]), id="instant-out-of-range"),
    pytest.param(_cursor(["not a date", "x"]), id="not-an-instant"),
    pytest.param(_cursor([20300101, "x"]), id="number-for-instant"),
    pytest.param(_cursor([None, "x"]), id="null-instant"),
]


def _instant_sorted_lists(ids: dict[str, str]) -> list[tuple[str, dict[str, str]]]:
    since = "2000-01-01T00:00:00+00:00"
    return [
        ("/clients", {"updated_since": since}),
        (f"/clients/{ids['client_id']}/touches", {}),
        ("/callbacks", {}),
        ("/callbacks", {"updated_since": since}),
    ]


@pytest.mark.parametrize("cursor", FORGED_CURSORS)
def test_forged_cursors_are_400(rep, ids, cursor):
    for path, query in [("/clients", {}), *_instant_sorted_lists(ids)]:
        resp = rep.get(path, query_string={**query, "cursor": cursor})
        assert_error(resp, 400, "bad_request")


@pytest.mark.parametrize("cursor", FORGED_INSTANT_CURSORS)
def test_forged_instant_cursors_are_400(rep, ids, cursor):
    for path, query in _instant_sorted_lists(ids):
        resp = rep.get(path, query_string={**query, "cursor": cursor})
        assert_error(resp, 400, "bad_request")


def test_body_over_the_size_limit_is_413(app, rep, ids):
    limit = app.config["MAX_CONTENT_LENGTH"]
    for route in BODY_ROUTES:
        body = {**_valid_body(route, ids), "name": "x" * limit}
        resp = rep.call(route[0], _path(route, ids), body)
        assert_error(resp, 413, "too_large", label=str(route))
        # Not even JSON: the size is checked first.
        resp = raw(rep, route[0], _path(route, ids), b"x" * (limit + 1))
        assert_error(resp, 413, "too_large", label=str(route))


def test_size_limit_applies_before_login(app):
    client = app.test_client()
    headers = {"X-CSRFToken": client.get(f"{API}/csrf").json["csrf_token"]}
    big = b"{" + b" " * app.config["MAX_CONTENT_LENGTH"] + b"}"
    for path in ("/auth/login", "/auth/register"):
        resp = client.post(API + path, data=big, headers=headers, content_type="application/json")
        assert_error(resp, 413, "too_large")


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded", "text/html"],
)
def test_json_text_with_a_wrong_content_type_is_415(rep, ids, content_type):
    before = rep.get("/me").json
    for route in BODY_ROUTES:
        data = json.dumps(_valid_body(route, ids))
        resp = raw(rep, route[0], _path(route, ids), data, content_type)
        assert_error(resp, 415, "unsupported_media_type", label=str(route))
    # Nothing was written, and the rep is still the one logged in.
    assert rep.get("/me").json == before
    assert [c["id"] for c in rep.get("/clients").json["items"]] == [ids["client_id"]]


def test_a_form_post_is_415_not_silently_empty(rep):
    resp = rep.client.patch(
        f"{API}/me", data={"name": "Formed"}, headers={"X-CSRFToken": rep.token}
    )
    assert_error(resp, 415, "unsupported_media_type")
    assert rep.get("/me").json["name"] == "Rep"


BAD_ID_PATHS = [
    ("GET", "/clients/not-a-uuid"),
    ("GET", "/clients/123"),
    ("GET", "/clients/%00"),
    ("GET", "/clients/" + "f" * 300),
    ("PATCH", "/clients/not-a-uuid"),
    ("DELETE", "/clients/not-a-uuid"),
    ("GET", "/clients/not-a-uuid/touches"),
    ("POST", "/callbacks/not-a-uuid/snooze"),
    ("DELETE", "/callbacks/12345678-1234-1234-1234-1234567890"),
    ("GET", "/clients/00000000-0000-0000-0000-000000000000"),
    ("DELETE", "/callbacks/00000000-0000-0000-0000-000000000000"),
]


def test_bad_or_unknown_ids_in_paths_are_404(rep):
    for method, path in BAD_ID_PATHS:
        body = {"until": "2030-02-01T09:00:00+00:00"} if path.endswith("snooze") else None
        if method == "PATCH":
            body = {"name": "x"}
        assert_error(rep.call(method, path, body), 404, "not_found", label=f"{method} {path}")


UNKNOWN_ROUTES = [
    ("GET", "/api/v1/nope"),
    ("POST", "/api/v1/nope"),
    ("GET", "/api/v1/clients/"),
    ("GET", "/api/v1/touches/123"),
    ("GET", "/api/v2/clients"),
    ("GET", "/api/v1/../../etc/passwd"),
    ("GET", "/nope"),
]


def test_unknown_routes_are_404_json(app, rep):
    for method, path in UNKNOWN_ROUTES:
        for client, headers in ((rep.client, {"X-CSRFToken": rep.token}), (app.test_client(), {})):
            resp = client.open(path, method=method, headers=headers)
            assert_error(resp, 404, "not_found", label=f"{method} {path}")
            assert "Location" not in resp.headers


WRONG_METHODS = [
    ("PUT", "/api/v1/clients"),
    ("DELETE", "/api/v1/clients"),
    ("PUT", "/api/v1/clients/{client_id}"),
    ("POST", "/api/v1/clients/{client_id}"),
    ("PUT", "/api/v1/touches"),
    ("PUT", "/api/v1/me"),
    ("POST", "/api/v1/today"),
    ("GET", "/api/v1/callbacks/{callback_id}/snooze"),
    ("GET", "/api/v1/auth/login"),
    ("DELETE", "/api/v1/openapi.json"),
]


def test_wrong_methods_are_405_json(rep, ids):
    for method, path in WRONG_METHODS:
        headers = {"X-CSRFToken": rep.token}
        resp = rep.client.open(path.format(**ids), method=method, headers=headers)
        assert_error(resp, 405, "method_not_allowed", label=f"{method} {path}")
        assert method not in resp.headers["Allow"]


def test_missing_csrf_token_is_an_error_in_the_shape(rep, ids):
    for method, path, body in (
        ("POST", "/clients", {"name": "x"}),
        ("PATCH", "/me", {"name": "x"}),
        ("DELETE", f"/clients/{ids['client_id']}", None),
        ("POST", "/touches", _valid_body(("POST", "/touches"), ids)),
    ):
        resp = rep.client.open(API + path, method=method, json=body)
        assert_error(resp, 400, "csrf_failed", label=f"{method} {path}")
    assert rep.get(f"/clients/{ids['client_id']}").json["archived_at"] is None


PROTECTED = [
    ("GET", "/me"),
    ("PATCH", "/me"),
    ("GET", "/clients"),
    ("POST", "/clients"),
    ("GET", f"/clients/{uuid.uuid4()}"),
    ("GET", f"/clients/{uuid.uuid4()}/touches"),
    ("POST", "/touches"),
    ("GET", "/callbacks"),
    ("DELETE", f"/callbacks/{uuid.uuid4()}"),
    ("GET", "/today"),
]


def test_not_logged_in_is_401_json_with_headers(app):
    client = app.test_client()
    token = client.get(f"{API}/csrf").json["csrf_token"]
    for method, path in PROTECTED:
        resp = client.open(API + path, method=method, headers={"X-CSRFToken": token}, json={})
        assert_error(resp, 401, "unauthorized", label=f"{method} {path}")
        assert "Location" not in resp.headers
        assert resp.headers.get("Cache-Control") == "no-store"


def test_security_headers_on_every_kind_of_answer(app, rep, ids):
    answers = [
        rep.get("/me"),
        rep.get("/clients"),
        rep.post("/clients", {"name": "Headers"}),
        rep.delete(f"/callbacks/{ids['callback_id']}"),
        rep.get("/openapi.json"),
        rep.client.get(f"{API}/csrf"),
        app.test_client().get(f"{API}/me"),
        app.test_client().get("/no-such-page"),
        app.test_client().head(f"{API}/csrf"),
        rep.post("/clients", {"name": ""}),
        rep.client.open(f"{API}/clients", method="PUT"),
        raw(rep, "POST", "/clients", b"{", "application/json"),
    ]
    statuses = sorted({resp.status_code for resp in answers})
    assert statuses == [200, 201, 204, 400, 401, 404, 405, 422]
    for resp in answers:
        assert_security_headers(resp)
    for resp in answers:
        if resp.request.path.startswith("/api/"):
            assert resp.headers.get("Cache-Control") == "no-store", resp.request.path


def _session_cookie(client):
    cookie = client.get_cookie("touchbase_session")
    assert cookie is not None
    return cookie


def _register(client, base_url: str, email: str, headers: dict[str, str] | None = None):
    token = client.get(f"{API}/csrf", base_url=base_url, headers=headers).json["csrf_token"]
    resp = client.post(
        f"{API}/auth/register",
        base_url=base_url,
        json={"email": email, "password": "long enough pw", "timezone": "UTC"},
        # Over HTTPS flask-wtf also checks that the Referer is our own origin.
        headers={"X-CSRFToken": token, "Referer": f"{base_url}/", **(headers or {})},
    )
    assert resp.status_code == 201, resp.json
    return resp


def test_session_cookie_over_plain_http(app):
    client = app.test_client()
    resp = _register(client, "http://localhost", "plain@example.com")
    header = resp.headers["Set-Cookie"]
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Secure" not in header
    cookie = _session_cookie(client)
    assert cookie.http_only and cookie.same_site == "Lax" and not cookie.secure


def test_session_cookie_over_https_is_secure(app):
    client = app.test_client()
    resp = _register(client, "https://localhost", "secure@example.com")
    header = resp.headers["Set-Cookie"]
    assert "HttpOnly" in header and "SameSite=Lax" in header and "; Secure" in header
    cookie = _session_cookie(client)
    assert cookie.http_only and cookie.same_site == "Lax" and cookie.secure
    # Logging in again over HTTPS keeps the flags.
    token = client.get(f"{API}/csrf", base_url="https://localhost").json["csrf_token"]
    login = client.post(
        f"{API}/auth/login",
        base_url="https://localhost",
        json={"email": "secure@example.com", "password": "long enough pw"},
        headers={"X-CSRFToken": token, "Referer": "https://localhost/"},
    )
    assert login.status_code == 200
    assert "; Secure" in login.headers["Set-Cookie"] and "HttpOnly" in login.headers["Set-Cookie"]


def test_session_cookie_secure_behind_a_proxy(database_url, tmp_path, monkeypatch):
    monkeypatch.setenv("TOUCHBASE_INSTANCE_PATH", str(tmp_path / "proxied"))
    proxied = create_app(
        {
            "DATABASE_URL": database_url,
            "TESTING": True,
            "PASSWORD_HASH_METHOD": "scrypt:1024:8:1",
            "PROXY_FIX": 1,
        }
    )
    try:
        client = proxied.test_client()
        forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "touchbase.example"}
        token = client.get(f"{API}/csrf", headers=forwarded).json["csrf_token"]
        resp = client.post(
            f"{API}/auth/register",
            json={"email": "proxied@example.com", "password": "long enough pw", "timezone": "UTC"},
            headers={
                "X-CSRFToken": token,
                "Referer": "https://touchbase.example/",
                **forwarded,
            },
        )
        assert resp.status_code == 201, resp.json
        header = resp.headers["Set-Cookie"]
        assert "; Secure" in header and "HttpOnly" in header and "SameSite=Lax" in header
        # The same app over plain HTTP (no forwarded header) does not mark it Secure.
        plain = proxied.test_client()
        _register(plain, "http://localhost", "plain-proxied@example.com")
        assert not _session_cookie(plain).secure
    finally:
        proxied.extensions["sqlalchemy"].engine.dispose()
