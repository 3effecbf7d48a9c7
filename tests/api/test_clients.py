"""Clients: create (idempotent by id), find, change, archive; phones in E.164."""

from __future__ import annotations

import uuid


def test_create_and_get(rep):
    client = rep.add_client(
        "Dana Diaz",
        phone="(312) 555-0134",
        email="dana@example.com",
        company="Acme",
        notes="Met at the expo",
        talking_points="New warehouse",
        tags=["A", "expo", "a"],
        cadence_days=14,
    )
    assert client["phone"] == "+13125550134"
    assert client["tags"] == ["A", "expo"]
    assert client["last_touch_at"] is None and client["attempts_since_reached"] == 0
    assert client["open_callback"] is None and client["archived_at"] is None
    got = rep.get(f"/clients/{client['id']}")
    assert got.status_code == 200 and got.json == client


def test_phone_kept_as_typed_when_not_a_number(rep):
    assert rep.add_client("X", phone="ask reception")["phone"] == "ask reception"
    assert rep.add_client("Y", phone="+44 20 7946 0958")["phone"] == "+442079460958"
    assert rep.add_client("Z", phone="  ")["phone"] is None


def test_create_with_client_id_is_idempotent(rep):
    cid = str(uuid.uuid4())
    body = {"id": cid, "name": "Offline Olga", "phone": "312-555-0100"}
    first = rep.post("/clients", body)
    assert first.status_code == 201 and first.json["id"] == cid
    again = rep.post("/clients", body)
    assert again.status_code == 200 and again.json == first.json
    different = rep.post("/clients", {**body, "name": "Someone else"})
    assert different.status_code == 409
    assert len(rep.get("/clients").json["items"]) == 1


def test_client_id_of_another_rep_is_a_conflict(rep, other_rep):
    cid = str(uuid.uuid4())
    assert rep.post("/clients", {"id": cid, "name": "Mine"}).status_code == 201
    theirs = other_rep.post("/clients", {"id": cid, "name": "Mine"})
    assert theirs.status_code == 409
    assert other_rep.get("/clients").json["items"] == []


def test_update(rep):
    client = rep.add_client("Old Name")
    resp = rep.patch(
        f"/clients/{client['id']}", {"name": " New Name ", "phone": "312 555 0199", "notes": ""}
    )
    assert resp.status_code == 200
    assert resp.json["name"] == "New Name" and resp.json["phone"] == "+13125550199"
    assert resp.json["notes"] is None
    assert resp.json["updated_at"] >= client["updated_at"]
    assert rep.patch(f"/clients/{client['id']}", {}).status_code == 422
    assert rep.patch(f"/clients/{client['id']}", {"name": ""}).status_code == 422
    assert rep.patch(f"/clients/{client['id']}", {"cadence_days": 0}).status_code == 422
    assert rep.patch(f"/clients/{uuid.uuid4()}", {"name": "x"}).status_code == 404


def test_search(rep):
    rep.add_client("Alice Archer", company="Bolt Ltd", phone="312-555-0111")
    rep.add_client("Bob Baker", email="bob@bakery.example", company="Crumbs")
    rep.add_client("Carol 100%_real", company="Acme")

    def names(q):
        resp = rep.get("/clients", query_string={"q": q})
        assert resp.status_code == 200
        return [c["name"] for c in resp.json["items"]]

    assert names("alice") == ["Alice Archer"]
    assert names("BOLT") == ["Alice Archer"]
    assert names("bakery") == ["Bob Baker"]
    assert names("555 0111") == ["Alice Archer"]
    assert names("100%_") == ["Carol 100%_real"]
    assert names("%") == ["Carol 100%_real"]
    assert names("nobody") == []


def test_cursor_pagination(rep):
    for i in range(7):
        rep.add_client(f"Client {i:02d}")
    seen, cursor = [], None
    while True:
        query = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = rep.get("/clients", query_string=query).json
        seen += [c["name"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"Client {i:02d}" for i in range(7)]
    assert rep.get("/clients", query_string={"cursor": "garbage!"}).status_code == 400
    assert rep.get("/clients", query_string={"limit": 501}).status_code == 422
    assert rep.get("/clients", query_string={"limit": 0}).status_code == 422


def test_archive(rep):
    client = rep.add_client("Gone Gary")
    kept = rep.add_client("Kept Kim")
    rep.touch(client["id"], "left_message", callback_at="2030-01-02T09:00:00+00:00")
    assert rep.delete(f"/clients/{client['id']}").status_code == 204
    assert rep.delete(f"/clients/{client['id']}").status_code == 204
    listed = [c["id"] for c in rep.get("/clients").json["items"]]
    assert listed == [kept["id"]]
    got = rep.get(f"/clients/{client['id']}").json
    assert got["archived_at"] is not None and got["open_callback"] is None
    history = rep.get(f"/clients/{client['id']}/touches").json["items"]
    assert len(history) == 1
    assert rep.get("/callbacks", query_string={"status": "open"}).json["items"] == []


def test_updated_since_includes_archived_for_sync(rep):
    first = rep.add_client("First")
    mark = rep.get(f"/clients/{first['id']}").json["updated_at"]
    second = rep.add_client("Second")
    rep.delete(f"/clients/{first['id']}")
    changed = rep.get("/clients", query_string={"updated_since": mark}).json["items"]
    assert {c["id"] for c in changed} == {first["id"], second["id"]}
    assert (
        rep.get("/clients", query_string={"updated_since": "2026-01-01T00:00:00"}).status_code
        == 422
    )
