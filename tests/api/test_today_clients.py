"""GET /today answers each listed client exactly as GET /clients/{id} does, open promise included.

services/today.py builds the clients from its own rows (not through ``get_clients``), so this
holds the two shapes together: every field, and the soonest open promise when there are several.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
import time_machine

from tests.conftest import register_rep
from webapp.models import callbacks

# Monday 23 November 2026, 10:00 in Los Angeles.
NOW = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)
SOONER = "ffffffff-0000-4000-8000-000000000001"
TIE_LOW = "00000000-0000-4000-8000-000000000002"
TIE_HIGH = "ffffffff-0000-4000-8000-000000000003"


def _promise(app, rep, client_id: str, callback_id: str, due: datetime) -> None:
    """A second open promise for a client, as an offline phone's and the server's can meet."""
    engine = app.extensions["sqlalchemy"].engine
    with engine.begin() as conn:
        conn.execute(
            sa.insert(callbacks).values(
                id=callback_id,
                user_id=rep.user["id"],
                client_id=client_id,
                origin_at=datetime(2026, 11, 16, 18, 0, tzinfo=UTC),
                due_at=due,
                status="open",
            )
        )


def test_items_carry_the_client_as_get_client_answers(app):
    with time_machine.travel(datetime(2026, 9, 1, 12, 0, tzinfo=UTC), tick=False):
        rep = register_rep(app, timezone="America/Los_Angeles")
        rep.add_client("Weekly", cadence_days=7, tags=["A", "north"], notes="Two stores")
        rep.add_client("Never", company="Acme", talking_points="- the new line")
        once = rep.add_client("One promise")
        twice = rep.add_client("Two promises")
        tied = rep.add_client("Two promises, same time")
    with time_machine.travel(NOW, tick=False):
        rep.login()
        for client, due in ((once, "2026-11-20T17:00:00Z"), (twice, "2026-11-23T20:00:00Z")):
            resp = rep.touch(
                client["id"], "no_answer", happened_at="2026-11-16T18:00:00Z", callback_at=due
            )
            assert resp.status_code == 201, resp.json
        _promise(app, rep, twice["id"], SOONER, datetime(2026, 11, 21, 17, 0, tzinfo=UTC))
        for callback_id in (TIE_HIGH, TIE_LOW):
            _promise(app, rep, tied["id"], callback_id, datetime(2026, 11, 19, 17, 0, tzinfo=UTC))
        items = rep.get("/today").json["items"]
        alone = {i["client"]["id"]: rep.get(f"/clients/{i['client']['id']}").json for i in items}

    reasons = sorted(i["reason"] for i in items)
    assert reasons == ["cadence", "callback", "callback", "callback", "reconnect"]
    for item in items:
        assert item["client"] == alone[item["client"]["id"]]
    by_name = {i["client"]["name"]: i for i in items}
    assert by_name["Two promises"]["client"]["open_callback"] == {
        "id": SOONER,
        "due_at": "2026-11-21T17:00:00+00:00",
    }
    assert by_name["Two promises, same time"]["client"]["open_callback"]["id"] == TIE_LOW
    assert by_name["Two promises, same time"]["callback_id"] == TIE_LOW
    assert by_name["Weekly"]["client"]["open_callback"] is None
    assert by_name["Never"]["client"]["company"] == "Acme"


def test_an_archived_clients_reopened_promise_stays_off_the_list(rep):
    client = rep.add_client("Archived")
    callback_id = str(uuid.uuid4())
    resp = rep.touch(
        client["id"],
        "no_answer",
        callback_at="2026-01-02T09:00:00Z",
        callback_id=callback_id,
        happened_at="2026-01-01T09:00:00Z",
    )
    assert resp.status_code == 201, resp.json
    assert rep.delete(f"/clients/{client['id']}").status_code == 204
    # Snoozing the cancelled promise opens it again, archived client or not.
    again = rep.post(f"/callbacks/{callback_id}/snooze", {"until": "2026-01-05T09:00:00Z"})
    assert again.status_code == 200 and again.json["status"] == "open"
    assert rep.get("/today").json["items"] == []
