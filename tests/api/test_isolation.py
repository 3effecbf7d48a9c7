"""Reps never see or touch each other's data: every route of the API, checked across two reps.

Rep A owns clients with touches and an open callback; rep B is logged in on their own. B calls
every id-taking route with A's ids (and a valid body): each answers 404 in the error shape, the same
answer as for an id nobody has, and A's rows are unchanged afterwards. B's own lists, searches,
sync queries and today's list never carry A's data.

The matrix is checked against the app's routes: a new route under /api/v1 that is neither in the
matrix nor listed as public makes ``test_matrix_covers_every_route`` fail until it is added here.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import PASSWORD, Rep
from tests.push.fake_service import browser_keys

API = "/api/v1"

# Routes that are not scoped to a rep: no data of anyone's behind them.
PUBLIC = {
    ("GET", "/api/v1/csrf"),
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/login"),
    ("GET", "/api/v1/openapi.json"),
    # The VAPID public key: the same for everyone, and meant to be public.
    ("GET", "/api/v1/push/key"),
}

# Every route that takes an id in its path, with a body that would be valid for the owner.
FOREIGN_ID_CALLS: dict[tuple[str, str], Any] = {
    ("GET", "/api/v1/clients/{client_id}"): None,
    ("PATCH", "/api/v1/clients/{client_id}"): {"name": "Taken Over", "notes": "mine now"},
    ("DELETE", "/api/v1/clients/{client_id}"): None,
    ("GET", "/api/v1/clients/{client_id}/touches"): None,
    ("POST", "/api/v1/callbacks/{callback_id}/snooze"): {"until": "2031-03-04T15:00:00+00:00"},
    ("DELETE", "/api/v1/callbacks/{callback_id}"): None,
}

# Text of A's that must never show up in anything B is answered.
SECRETS = ("Zelda Secretname", "Secretname", "5550177", "zelda@secret.example", "Hushco", "hush")


@pytest.fixture
def world(rep: Rep, other_rep: Rep) -> dict[str, Any]:
    """A (``rep``) with two clients, touches and an open callback; B (``other_rep``) with one."""
    client = rep.add_client(
        "Zelda Secretname",
        phone="312-555-0177",
        email="zelda@secret.example",
        company="Hushco",
        notes="hush hush",
        tags=["A"],
        cadence_days=7,
    )
    second = rep.add_client("Yusuf Secondary")
    assert rep.touch(client["id"], "reached", note="hush: budget").status_code == 201
    promise = rep.touch(client["id"], "left_message", callback_at="2030-05-06T15:00:00+00:00")
    assert promise.status_code == 201, promise.json
    assert rep.touch(second["id"], "no_answer").status_code == 201
    own = other_rep.add_client("Bea Own")
    browser = rep.post("/push/subscriptions", {"endpoint": A_ENDPOINT, "keys": browser_keys()})
    assert browser.status_code == 201, browser.json
    return {
        "a": rep,
        "b": other_rep,
        "ids": {"client_id": client["id"], "callback_id": promise.json["callback_id"]},
        "client": client,
        "second": second,
        "b_client": own,
    }


def _routes(app) -> set[tuple[str, str]]:
    """(method, path) of every route under /api/v1, path parameters written as {name}."""
    routes = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(API + "/"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes.add((method, path))
    return routes


def _snapshot(app, user_id: str) -> dict[str, list[tuple]]:
    """Every row of the rep's, in every table, as stored."""
    engine = app.extensions["sqlalchemy"].engine
    with engine.connect() as conn:
        rows = {
            "users": conn.execute(
                sa.text("SELECT * FROM users WHERE id = :u"), {"u": user_id}
            ).all()
        }
        for table in ("clients", "touches", "callbacks", "push_subscriptions", "sessions"):
            rows[table] = conn.execute(
                sa.text(f"SELECT * FROM {table} WHERE user_id = :u ORDER BY id"), {"u": user_id}
            ).all()
    return {table: [tuple(r) for r in found] for table, found in rows.items()}


def _a_view(world) -> dict[str, Any]:
    """What A sees of their own data through the API."""
    a, cid = world["a"], world["ids"]["client_id"]
    return {
        "me": a.get("/me").json,
        "client": a.get(f"/clients/{cid}").json,
        "touches": a.get(f"/clients/{cid}/touches").json,
        "callbacks": a.get("/callbacks").json,
        "clients": a.get("/clients").json,
    }


def _assert_no_secrets(resp) -> None:
    text = resp.get_data(as_text=True)
    for secret in SECRETS:
        assert secret not in text, (secret, text)


def _assert_error(resp, status: int, code: str) -> None:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.is_json
    body = resp.json
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    _assert_no_secrets(resp)


def _call(rep: Rep, method: str, path: str, ids: dict[str, str], body: Any) -> Any:
    return rep.call(method, path.removeprefix(API).format(**ids), body)


def test_matrix_covers_every_route(app):
    routes = _routes(app)
    covered = set(FOREIGN_ID_CALLS) | set(SCOPED_CALLS) | PUBLIC
    assert routes - covered == set(), "routes missing from the isolation matrix"
    assert covered - routes == set(), "the matrix lists routes the app does not have"
    # Every route with an id in its path is in the 404 matrix, not among the scoped ones.
    with_ids = {route for route in routes if "{" in route[1]}
    assert with_ids == set(FOREIGN_ID_CALLS)


@pytest.mark.parametrize(
    ("method", "path"), list(FOREIGN_ID_CALLS), ids=[f"{m} {p}" for m, p in FOREIGN_ID_CALLS]
)
def test_foreign_ids_answer_404_and_change_nothing(app, world, method, path):
    a, b, ids = world["a"], world["b"], world["ids"]
    body = FOREIGN_ID_CALLS[(method, path)]
    rows_before, view_before = _snapshot(app, a.user["id"]), _a_view(world)

    resp = _call(b, method, path, ids, body)
    _assert_error(resp, 404, "not_found")
    # Exactly what an id that nobody has gets: nothing tells B that A's id exists.
    unknown = _call(b, method, path, {k: str(uuid.uuid4()) for k in ids}, body)
    assert (unknown.status_code, unknown.json) == (resp.status_code, resp.json)

    assert _snapshot(app, a.user["id"]) == rows_before
    assert _a_view(world) == view_before
    # The same call is fine for the owner: the 404 above is about ownership, not the request.
    assert _call(a, method, path, ids, body).status_code < 300


def test_all_foreign_calls_in_a_row_leave_a_untouched(app, world):
    a, b, ids = world["a"], world["b"], world["ids"]
    rows_before, view_before = _snapshot(app, a.user["id"]), _a_view(world)
    for (method, path), body in FOREIGN_ID_CALLS.items():
        _assert_error(_call(b, method, path, ids, body), 404, "not_found")
    assert _snapshot(app, a.user["id"]) == rows_before
    assert _a_view(world) == view_before
    assert (
        a.get("/callbacks", query_string={"status": "open"}).json["items"][0]["id"]
        == (ids["callback_id"])
    )


# Routes without an id in the path: each one answers B with B's data only.


def _get_me(world) -> None:
    resp = world["b"].get("/me")
    assert resp.status_code == 200
    assert resp.json["id"] == world["b"].user["id"] != world["a"].user["id"]
    assert resp.json["email"] == "other@example.com"


def _patch_me(world) -> None:
    a_me = world["a"].get("/me").json
    resp = world["b"].patch("/me", {"name": "Bea", "timezone": "Asia/Tokyo", "daily_goal": 3})
    assert resp.status_code == 200 and resp.json["id"] == world["b"].user["id"]
    assert world["a"].get("/me").json == a_me


def _list_clients(world) -> None:
    a, b = world["a"], world["b"]
    a_ids = {world["client"]["id"], world["second"]["id"]}
    listed = b.get("/clients")
    assert listed.status_code == 200
    assert [c["id"] for c in listed.json["items"]] == [world["b_client"]["id"]]
    queries = [
        {"q": "Zelda Secretname"},
        {"q": "secretname"},
        {"q": "Hushco"},
        {"q": "zelda@secret.example"},
        {"q": "312 555 0177"},
        {"q": "Yusuf"},
        {"updated_since": "2000-01-01T00:00:00+00:00"},
        {"limit": 500},
    ]
    # A cursor from A's own list, replayed by B, still reads B's rows only.
    a_page = a.get("/clients", query_string={"limit": 1}).json
    assert a_page["next_cursor"] is not None
    queries.append({"cursor": a_page["next_cursor"]})
    for query in queries:
        resp = b.get("/clients", query_string=query)
        assert resp.status_code == 200, (query, resp.json)
        assert not {c["id"] for c in resp.json["items"]} & a_ids, query
        _assert_no_secrets(resp)
    # The same searches do find A's client for A: B's empty answers are not empty by accident.
    assert [c["id"] for c in a.get("/clients", query_string={"q": "Hushco"}).json["items"]] == [
        world["client"]["id"]
    ]
    synced = b.get("/clients", query_string={"updated_since": "2000-01-01T00:00:00+00:00"})
    assert [c["id"] for c in synced.json["items"]] == [world["b_client"]["id"]]


def _create_client_with_foreign_id(world) -> None:
    a, b = world["a"], world["b"]
    cid = world["client"]["id"]
    same_as_a = {
        "id": cid,
        "name": "Zelda Secretname",
        "phone": "312-555-0177",
        "email": "zelda@secret.example",
        "company": "Hushco",
        "notes": "hush hush",
        "tags": ["A"],
        "cadence_days": 7,
    }
    for body in ({"id": cid, "name": "Bea's Zelda"}, same_as_a):
        resp = b.post("/clients", body)
        _assert_error(resp, 409, "conflict")
    assert [c["id"] for c in b.get("/clients").json["items"]] == [world["b_client"]["id"]]
    assert a.get(f"/clients/{cid}").json["name"] == "Zelda Secretname"


def _promise_for_foreign_client(world) -> None:
    a, b, ids = world["a"], world["b"], world["ids"]
    before = a.get(f"/clients/{ids['client_id']}").json
    body = {"id": str(uuid.uuid4()), "client_id": ids["client_id"], "due_at": "2031-01-01T09:00Z"}
    _assert_error(b.post("/callbacks", body), 404, "not_found")
    # Nor can B take A's callback id for a promise on B's own client.
    clash = {**body, "id": ids["callback_id"], "client_id": world["b_client"]["id"]}
    _assert_error(b.post("/callbacks", clash), 409, "conflict")
    assert a.get(f"/clients/{ids['client_id']}").json == before
    assert b.get("/callbacks").json["items"] == []


def _log_touch(world) -> None:
    a, b, ids = world["a"], world["b"], world["ids"]
    before = a.get(f"/clients/{ids['client_id']}").json
    resp = b.touch(ids["client_id"], "reached", callback_at="2031-01-01T09:00:00+00:00")
    _assert_error(resp, 404, "not_found")
    # Ids are global: B cannot take A's callback id for a promise on B's own client either.
    clash = b.touch(
        world["b_client"]["id"],
        "left_message",
        callback_at="2031-01-01T09:00:00+00:00",
        callback_id=ids["callback_id"],
    )
    _assert_error(clash, 409, "conflict")
    assert b.get(f"/clients/{world['b_client']['id']}/touches").json["items"] == []
    assert a.get(f"/clients/{ids['client_id']}").json == before


def _list_callbacks(world) -> None:
    a, b, ids = world["a"], world["b"], world["ids"]
    # B has a promise of their own, so an empty list would not pass by accident.
    mine = b.touch(world["b_client"]["id"], "no_answer", callback_at="2030-07-01T09:00:00+00:00")
    assert mine.status_code == 201
    for query in ({}, {"status": "open"}, {"updated_since": "2000-01-01T00:00:00+00:00"}):
        resp = b.get("/callbacks", query_string=query)
        assert resp.status_code == 200
        assert [c["id"] for c in resp.json["items"]] == [mine.json["callback_id"]], query
        assert ids["client_id"] not in resp.get_data(as_text=True)
    assert ids["callback_id"] in a.get("/callbacks").get_data(as_text=True)


def _list_touches(world) -> None:
    a, b, ids = world["a"], world["b"], world["ids"]
    mine = b.touch(world["b_client"]["id"], "reached")
    assert mine.status_code == 201
    for query in ({}, {"updated_since": "2000-01-01T00:00:00+00:00"}):
        resp = b.get("/touches", query_string=query)
        assert resp.status_code == 200
        assert [t["id"] for t in resp.json["items"]] == [mine.json["id"]], query
        assert ids["client_id"] not in resp.get_data(as_text=True)
    assert ids["client_id"] in a.get("/touches").get_data(as_text=True)


def _today(world) -> None:
    a, b = world["a"], world["b"]
    resp = b.get("/today")
    assert resp.status_code == 200
    # A touched three times today; none of it counts for B.
    assert resp.json["done_today"] == 0
    assert [item["client"]["id"] for item in resp.json["items"]] == [world["b_client"]["id"]]
    _assert_no_secrets(resp)
    assert a.get("/today").json["done_today"] == 3


def _stats_client_ids(body: dict[str, Any]) -> dict[str, set[str]]:
    """The client ids in each list of a /stats answer."""
    return {
        "slipping": {
            s["client"]["id"] for tier in body["coverage"]["tiers"] for s in tier["slipping"]
        },
        "broken": {p["client"]["id"] for p in body["promises"]["broken"]},
        "persistence": {p["client"]["id"] for p in body["persistence"]},
        "inactive": {i["client"]["id"] for i in body["inactive"]},
    }


def _stats(world) -> None:
    a, b = world["a"], world["b"]
    b_id = world["b_client"]["id"]
    # B's own broken promise, unanswered run and slipping tier-A client, so that every list of
    # B's answer has something in it (tests/api/test_stats.py fills A's lists too).
    for _ in range(3):
        assert b.touch(b_id, "no_answer").status_code == 201
    due = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    past = {"id": str(uuid.uuid4()), "client_id": b_id, "due_at": due}
    assert b.post("/callbacks", past).status_code == 201
    assert b.patch(f"/clients/{b_id}", {"tags": ["A"]}).status_code == 200
    resp = b.get("/stats")
    assert resp.status_code == 200
    _assert_no_secrets(resp)
    for name, ids in _stats_client_ids(resp.json).items():
        assert ids == {b_id}, name
    assert resp.json["today"]["calls"] == 3
    assert resp.json["coverage"]["tiers"][0]["clients"] == 1
    assert resp.json["coverage"]["untiered"] == 0
    # A's answer has A's own clients and counts A's three calls only.
    mine = a.get("/stats").json
    assert _stats_client_ids(mine)["inactive"] == {world["client"]["id"], world["second"]["id"]}
    assert mine["today"]["calls"] == 3
    assert mine["coverage"]["untiered"] == 1


A_ENDPOINT = "https://fcm.googleapis.com/fcm/send/a-secret-browser"


def _subscribe(world) -> None:
    b = world["b"]
    mine = "https://fcm.googleapis.com/fcm/send/b-own-browser"
    resp = b.post("/push/subscriptions", {"endpoint": mine, "keys": browser_keys()})
    assert resp.status_code == 201 and resp.json["endpoint"] == mine
    _assert_no_secrets(resp)
    assert A_ENDPOINT not in resp.get_data(as_text=True)


def _unsubscribe(world) -> None:
    # B cannot remove A's browser: the answer is the same 204, and A's row stays.
    resp = world["b"].delete("/push/subscriptions", {"endpoint": A_ENDPOINT})
    assert resp.status_code == 204


def _push_test(world) -> None:
    # B has no browser: nothing is queued, and A's browser is not asked to show B's test.
    resp = world["b"].post("/push/test")
    assert resp.status_code == 202 and resp.json == {"devices": 0}


def _import(world) -> None:
    # B imports a file with A's client's exact name, phone and email: B gets a client of their
    # own, matched against B's clients only; A's row is untouched (checked by the caller).
    b = world["b"]
    data = b"name,phone,email\nZelda Secretname,312-555-0177,zelda@secret.example\n"
    resp = b.post(
        "/import", data={"file": (io.BytesIO(data), "a.csv")}, content_type="multipart/form-data"
    )
    assert resp.status_code == 200, resp.json
    assert (resp.json["created"], resp.json["updated"], resp.json["skipped"]) == (1, 0, 0)
    ids = {c["id"] for c in b.get("/clients").json["items"]}
    assert world["client"]["id"] not in ids and len(ids) == 2


def _export_clients(world) -> None:
    resp = world["b"].get("/export/clients.csv")
    assert resp.status_code == 200
    assert "Bea Own" in resp.get_data(as_text=True)
    _assert_no_secrets(resp)
    assert world["client"]["id"] not in resp.get_data(as_text=True)


def _export_touches(world) -> None:
    b = world["b"]
    assert b.touch(world["b_client"]["id"], "reached", note="mine").status_code == 201
    resp = b.get("/export/touches.csv")
    assert resp.status_code == 200
    assert "mine" in resp.get_data(as_text=True)
    _assert_no_secrets(resp)
    assert world["client"]["id"] not in resp.get_data(as_text=True)


def _calendar_feed_of(world, url: str) -> Any:
    path = url.split("://", 1)[1].split("/", 1)[1]
    return world["b"].client.application.test_client().get("/" + path)


def _get_calendar(world) -> None:
    resp = world["b"].get("/calendar")
    assert resp.status_code == 200 and resp.json["url"]
    feed = _calendar_feed_of(world, resp.json["url"])
    assert feed.status_code == 200
    _assert_no_secrets(feed)
    assert world["ids"]["callback_id"] not in feed.get_data(as_text=True)


def _rotate_calendar(world) -> None:
    resp = world["b"].post("/calendar/rotate")
    assert resp.status_code == 200 and resp.json["url"]
    feed = _calendar_feed_of(world, resp.json["url"])
    assert feed.status_code == 200
    _assert_no_secrets(feed)


def _export_account(world) -> None:
    b = world["b"]
    assert b.touch(world["b_client"]["id"], "reached", note="mine").status_code == 201
    resp = b.get("/export/account.json")
    assert resp.status_code == 200
    _assert_no_secrets(resp)
    text = resp.get_data(as_text=True)
    for a_id in (world["a"].user["id"], world["client"]["id"], world["ids"]["callback_id"]):
        assert a_id not in text
    assert A_ENDPOINT not in text
    doc = json.loads(text)
    assert doc["account"]["id"] == b.user["id"]
    assert [c["id"] for c in doc["clients"]] == [world["b_client"]["id"]]
    assert [t["note"] for t in doc["touches"]] == ["mine"]


def _a_still_logged_in(world) -> None:
    a = world["a"]
    assert a.get("/me").json["id"] == a.user["id"]
    assert world["client"]["id"] in {c["id"] for c in a.get("/clients").json["items"]}


def _logout(world) -> None:
    # B's logout ends B's session only.
    b = world["b"]
    assert b.post("/auth/logout").status_code == 204
    assert b.get("/me").status_code == 401


def _logout_all(world) -> None:
    b = world["b"]
    assert b.post("/auth/logout-all").status_code == 204
    assert b.get("/me").status_code == 401


def _delete_me(world) -> None:
    # B deletes B's own account (the two test reps share a password): all of B goes, A stays.
    b = world["b"]
    assert b.delete("/me", {"password": PASSWORD}).status_code == 204
    assert b.get("/me").status_code == 401
    left = _snapshot(b.client.application, b.user["id"])
    assert left["users"] == left["clients"] == left["sessions"] == []


SCOPED_CALLS = {
    ("GET", "/api/v1/me"): _get_me,
    ("PATCH", "/api/v1/me"): _patch_me,
    ("GET", "/api/v1/clients"): _list_clients,
    ("POST", "/api/v1/clients"): _create_client_with_foreign_id,
    ("POST", "/api/v1/touches"): _log_touch,
    ("POST", "/api/v1/callbacks"): _promise_for_foreign_client,
    ("GET", "/api/v1/callbacks"): _list_callbacks,
    ("GET", "/api/v1/touches"): _list_touches,
    ("GET", "/api/v1/today"): _today,
    ("GET", "/api/v1/stats"): _stats,
    ("POST", "/api/v1/push/subscriptions"): _subscribe,
    ("DELETE", "/api/v1/push/subscriptions"): _unsubscribe,
    ("POST", "/api/v1/push/test"): _push_test,
    ("POST", "/api/v1/import"): _import,
    ("GET", "/api/v1/export/clients.csv"): _export_clients,
    ("GET", "/api/v1/export/touches.csv"): _export_touches,
    ("GET", "/api/v1/calendar"): _get_calendar,
    ("POST", "/api/v1/calendar/rotate"): _rotate_calendar,
    ("GET", "/api/v1/export/account.json"): _export_account,
    ("POST", "/api/v1/auth/logout"): _logout,
    ("POST", "/api/v1/auth/logout-all"): _logout_all,
    ("DELETE", "/api/v1/me"): _delete_me,
}


@pytest.mark.parametrize(
    ("method", "path"), list(SCOPED_CALLS), ids=[f"{m} {p}" for m, p in SCOPED_CALLS]
)
def test_scoped_routes_answer_with_own_data_only(app, world, method, path):
    a = world["a"]
    rows_before = _snapshot(app, a.user["id"])
    SCOPED_CALLS[(method, path)](world)
    assert _snapshot(app, a.user["id"]) == rows_before
    _a_still_logged_in(world)
