"""Callbacks: list, snooze (notify again), cancel; client-chosen ids before sync."""

from __future__ import annotations

import uuid


def _promise(rep, due="2030-01-02T09:00:00Z", **extra):
    client = rep.add_client()
    callback_id = str(uuid.uuid4())
    resp = rep.touch(
        client["id"], "left_message", callback_at=due, callback_id=callback_id, **extra
    )
    assert resp.status_code == 201
    return client, callback_id


def test_list_soonest_first_and_by_status(rep):
    _, late = _promise(rep, "2030-03-01T09:00:00Z")
    _, soon = _promise(rep, "2030-01-01T09:00:00Z")
    items = rep.get("/callbacks", query_string={"status": "open"}).json["items"]
    assert [c["id"] for c in items] == [soon, late]
    assert items[0]["status"] == "open" and items[0]["notified_at"] is None
    assert rep.get("/callbacks", query_string={"status": "done"}).json["items"] == []
    assert rep.get("/callbacks", query_string={"status": "maybe"}).status_code == 422


def test_snooze_moves_the_promise(app, rep):
    client, callback_id = _promise(rep)
    engine = app.extensions["sqlalchemy"].engine
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE callbacks SET notified_at = created_at, send_attempts = 3, last_error = 'x'"
        )
    resp = rep.post(f"/callbacks/{callback_id}/snooze", {"until": "2030-02-01T10:00:00+01:00"})
    assert resp.status_code == 200, resp.json
    assert resp.json["due_at"] == "2030-02-01T09:00:00+00:00"
    assert resp.json["notified_at"] is None and resp.json["last_error"] is None
    assert resp.json["status"] == "open"
    assert rep.get(f"/clients/{client['id']}").json["open_callback"]["due_at"] == (
        "2030-02-01T09:00:00+00:00"
    )
    bad = rep.post(f"/callbacks/{callback_id}/snooze", {"until": "2030-02-01T10:00:00"})
    assert bad.status_code == 422 and "until" in bad.json["error"]["fields"]


def test_cancel_then_snooze_reopens(rep):
    client, callback_id = _promise(rep)
    assert rep.delete(f"/callbacks/{callback_id}").status_code == 204
    assert rep.delete(f"/callbacks/{callback_id}").status_code == 204
    assert rep.get(f"/clients/{client['id']}").json["open_callback"] is None
    cancelled = rep.get("/callbacks", query_string={"status": "cancelled"}).json["items"]
    assert [c["id"] for c in cancelled] == [callback_id]
    # The rep picked "None", then changed their mind to a day: the promise is back.
    again = rep.post(f"/callbacks/{callback_id}/snooze", {"until": "2030-01-05T09:00:00Z"})
    assert again.status_code == 200 and again.json["status"] == "open"


def test_kept_promise_cannot_be_snoozed(rep):
    client, callback_id = _promise(rep, happened_at="2026-11-01T10:00:00Z")
    rep.touch(client["id"], "reached", happened_at="2026-11-02T10:00:00Z")
    resp = rep.post(f"/callbacks/{callback_id}/snooze", {"until": "2030-01-05T09:00:00Z"})
    assert resp.status_code == 409
    assert rep.delete(f"/callbacks/{callback_id}").status_code == 204
    done = rep.get("/callbacks", query_string={"status": "done"}).json["items"]
    assert [c["id"] for c in done] == [callback_id]


def test_unknown_callback_is_404(rep):
    missing = str(uuid.uuid4())
    assert rep.delete(f"/callbacks/{missing}").status_code == 404
    resp = rep.post(f"/callbacks/{missing}/snooze", {"until": "2030-01-05T09:00:00Z"})
    assert resp.status_code == 404 and resp.json["error"]["code"] == "not_found"


def test_updated_since_for_sync(rep):
    _, first = _promise(rep)
    mark = rep.get("/callbacks").json["items"][0]["updated_at"]
    _, second = _promise(rep)
    rep.delete(f"/callbacks/{first}")
    changed = rep.get("/callbacks", query_string={"updated_since": mark}).json["items"]
    assert {c["id"] for c in changed} == {first, second}


def test_promise_without_a_call(rep):
    client, old = _promise(rep, "2030-01-02T09:00:00Z")
    new = str(uuid.uuid4())
    body = {"id": new, "client_id": client["id"], "due_at": "2030-01-09T09:00:00-06:00"}
    resp = rep.post("/callbacks", body)
    assert resp.status_code == 201, resp.json
    assert resp.json["status"] == "open" and resp.json["due_at"] == "2030-01-09T15:00:00+00:00"
    # It replaces the open promise: the rep moved the date.
    assert rep.get(f"/clients/{client['id']}").json["open_callback"] == {
        "id": new,
        "due_at": "2030-01-09T15:00:00+00:00",
    }
    statuses = {c["id"]: c["status"] for c in rep.get("/callbacks").json["items"]}
    assert statuses == {old: "cancelled", new: "open"}
    # A replay (the phone never saw the answer) is a 200, even after a snooze.
    rep.post(f"/callbacks/{new}/snooze", {"until": "2030-01-10T09:00:00Z"})
    again = rep.post("/callbacks", body)
    assert again.status_code == 200 and again.json["due_at"] == "2030-01-10T09:00:00+00:00"
    # The next call keeps it, like any promise.
    rep.touch(client["id"], "reached")
    assert rep.get(f"/clients/{client['id']}").json["open_callback"] is None


def test_promise_without_a_call_refuses_bad_input(rep):
    client = rep.add_client()
    other = rep.add_client()
    cid = str(uuid.uuid4())
    ok = {"id": cid, "client_id": client["id"], "due_at": "2030-01-09T09:00:00Z"}
    assert rep.post("/callbacks", ok).status_code == 201
    clash = rep.post("/callbacks", {**ok, "client_id": other["id"]})
    assert clash.status_code == 409 and clash.json["error"]["code"] == "conflict"
    stranger = str(uuid.uuid4())
    unknown = rep.post("/callbacks", {**ok, "id": str(uuid.uuid4()), "client_id": stranger})
    assert unknown.status_code == 404
    naive = rep.post("/callbacks", {**ok, "id": str(uuid.uuid4()), "due_at": "2030-01-09T09:00"})
    assert naive.status_code == 422 and "due_at" in naive.json["error"]["fields"]
    rep.delete(f"/clients/{other['id']}")
    archived = rep.post("/callbacks", {**ok, "id": str(uuid.uuid4()), "client_id": other["id"]})
    assert archived.status_code == 404
