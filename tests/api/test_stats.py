"""GET /api/v1/stats over HTTP: login, the contract's shape, the OpenAPI document, and that a
rep's figures and lists never carry another rep's data. (Each figure is checked in
tests/unit/test_stats_figures.py.) Both database lanes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import Rep, register_rep

CLIENT_REF = {
    "id",
    "name",
    "phone",
    "company",
    "tags",
    "attempts_since_reached",
    "last_touch_at",
    "last_reached_at",
}
WEEK = {
    "start",
    "end",
    "calls",
    "reached",
    "reach_rate",
    "promises_due",
    "promises_kept",
    "promises_share",
    "coverage",
}


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


def fill(rep: Rep, tag: str) -> dict[str, str]:
    """A client in every list of /stats: slipping (tier A, never reached, three unanswered
    calls: persistence too), a broken promise, and one never touched (inactive)."""
    slipping = rep.add_client(f"{tag} Slipping", tags=["A"], company=f"{tag} Co")["id"]
    for hours in (30, 20, 10):
        assert rep.touch(slipping, "no_answer", happened_at=ago(hours=hours)).status_code == 201
    broken = rep.add_client(f"{tag} Broken", tags=["B"])["id"]
    made = rep.touch(broken, "left_message", happened_at=ago(days=5), callback_at=ago(days=3))
    assert made.status_code == 201
    reached = rep.touch(slipping, "reached", happened_at=ago(days=40), note=f"{tag} secret note")
    assert reached.status_code == 201
    silent = rep.add_client(f"{tag} Silent")["id"]
    return {"slipping": slipping, "broken": broken, "silent": silent}


def listed_ids(body: dict[str, Any]) -> set[str]:
    found = {s["client"]["id"] for t in body["coverage"]["tiers"] for s in t["slipping"]}
    found |= {b["client"]["id"] for b in body["promises"]["broken"]}
    found |= {p["client"]["id"] for p in body["persistence"]}
    found |= {i["client"]["id"] for i in body["inactive"]}
    return found


def test_stats_needs_a_login(app):
    resp = app.test_client().get("/api/v1/stats")
    assert resp.status_code == 401
    assert resp.json["error"]["code"] == "unauthorized"


def test_stats_answers_the_contract_shape(rep):
    made = fill(rep, "Ann")
    resp = rep.get("/stats")
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    body = resp.json
    assert set(body) == {
        "date",
        "today",
        "streak",
        "coverage",
        "promises",
        "persistence",
        "inactive",
        "weeks",
    }
    assert set(body["today"]) == {"calls", "reached", "promises_kept", "goal"}
    assert set(body["streak"]) == {"days", "goal", "weekends", "met_today"}
    assert set(body["coverage"]) == {"tiers", "untiered"}
    for tier in body["coverage"]["tiers"]:
        assert set(tier) == {"tier", "cadence_days", "clients", "within", "share", "slipping"}
    (slip,) = body["coverage"]["tiers"][0]["slipping"]
    assert set(slip) == {"client", "days_since_reached", "days_over"}
    assert set(slip["client"]) == CLIENT_REF
    assert set(body["promises"]) == {"window_days", "due", "kept", "share", "broken"}
    (broken,) = body["promises"]["broken"]
    assert set(broken) == {"callback_id", "client", "due_at", "status", "done_at", "days_late"}
    assert set(broken["client"]) == CLIENT_REF
    (stuck,) = body["persistence"]
    assert set(stuck) == {"client", "attempts"} and stuck["attempts"] == 3
    assert set(stuck["client"]) == CLIENT_REF
    assert {e["client"]["id"] for e in body["inactive"]} == set(made.values())
    for entry in body["inactive"]:
        assert set(entry) == {"client", "days_silent", "opener"}
        assert set(entry["client"]) == CLIENT_REF and entry["opener"]
    assert set(body["weeks"]) == {"this", "last"}
    for week in body["weeks"].values():
        assert set(week) == WEEK
        assert set(week["coverage"]) == {"A", "B", "C"}
    # Instants carry an offset; dates are plain dates.
    assert broken["due_at"].endswith("+00:00")
    assert len(body["date"]) == 10


def test_the_openapi_document_describes_stats(app):
    doc = app.test_client().get("/api/v1/openapi.json").json
    answer = doc["paths"]["/api/v1/stats"]["get"]["responses"]["200"]
    ref = answer["content"]["application/json"]["schema"]["$ref"]
    stats = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(stats["properties"]) >= {"today", "streak", "coverage", "promises", "weeks"}


def test_stats_is_read_only(rep):
    resp = rep.post("/stats", {})
    assert resp.status_code == 405
    assert resp.json["error"]["code"] == "method_not_allowed"


def test_a_second_reps_data_never_appears(app):
    ann = register_rep(app, email="ann@example.com")
    bob = register_rep(app, email="bob@example.com")  # the same zone, so days line up
    ann_ids = fill(ann, "Ann")
    bob_ids = fill(bob, "Bob")
    # Bob has more: a promise kept early and three calls now, which must not count for Ann.
    extra = bob.add_client("Bob Extra", tags=["C"])["id"]
    promise = {"id": str(uuid.uuid4()), "client_id": extra, "due_at": ago(days=-3)}
    assert bob.post("/callbacks", promise).status_code == 201
    for outcome in ("reached", "reached", "no_answer"):
        assert bob.touch(extra, outcome).status_code == 201

    ann_resp, bob_resp = ann.get("/stats"), bob.get("/stats")
    for resp, own, other in (
        (ann_resp, set(ann_ids.values()), "Bob"),
        (bob_resp, set(bob_ids.values()) | {extra}, "Ann"),
    ):
        assert resp.status_code == 200
        body = resp.json
        # Every list holds the rep's own clients only, and none is empty by accident.
        assert listed_ids(body) <= own
        assert body["coverage"]["tiers"][0]["slipping"] and body["promises"]["broken"]
        assert body["persistence"] and body["inactive"]
        assert other not in resp.get_data(as_text=True)
    ann_body, bob_body = ann_resp.json, bob_resp.json
    assert bob_body["today"]["calls"] - ann_body["today"]["calls"] == 3
    assert bob_body["today"]["reached"] - ann_body["today"]["reached"] == 2
    assert (ann_body["today"]["promises_kept"], bob_body["today"]["promises_kept"]) == (0, 1)
    assert bob_body["weeks"]["this"]["calls"] - ann_body["weeks"]["this"]["calls"] == 3
    assert ann_body["promises"]["due"] == 1
    assert [b["client"]["id"] for b in ann_body["promises"]["broken"]] == [ann_ids["broken"]]
    assert [t["clients"] for t in ann_body["coverage"]["tiers"]] == [1, 1, 0]
    assert [t["clients"] for t in bob_body["coverage"]["tiers"]] == [1, 1, 1]
    assert ann_body["coverage"]["untiered"] == bob_body["coverage"]["untiered"] == 1
