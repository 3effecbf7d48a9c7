"""No statement compares a callback's status with a bound value (models.callback_status_is).

On SQLite, a bound value compared with ``callbacks.status`` makes every run of the statement
plan it again (the partial index ``ix_callbacks_dispatch`` filters on status = 'open'), so each
status is written into the SQL. This drives the routes that read or change callbacks and looks
at every statement they ran.
"""

from __future__ import annotations

import re
import uuid

import pytest
import sqlalchemy as sa

BOUND_STATUS = re.compile(r"callbacks\.status\s*(=|!=|<>)\s*(\?|%\(|:)")


@pytest.fixture
def statements(app):
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        seen.append(statement)

    engine = app.extensions["sqlalchemy"].engine
    sa.event.listen(engine, "before_cursor_execute", record)
    yield seen
    sa.event.remove(engine, "before_cursor_execute", record)


def test_callback_statuses_are_written_into_the_sql(app, rep, statements):
    kept = rep.add_client("Kept")
    dropped = rep.add_client("Dropped")
    callback_ids = {}
    for client in (kept, dropped):
        callback_ids[client["id"]] = str(uuid.uuid4())
        resp = rep.touch(
            client["id"],
            "left_message",
            callback_at="2030-01-02T10:00:00+00:00",
            callback_id=callback_ids[client["id"]],
        )
        assert resp.status_code == 201, resp.json
    kept_callback = callback_ids[kept["id"]]
    answers = [
        rep.get("/today"),
        rep.get("/clients"),
        rep.get(f"/clients/{kept['id']}"),
        rep.get("/callbacks?status=open"),
        rep.get("/callbacks?status=done"),
        rep.get("/stats"),
        rep.get("/export/clients.csv"),
        rep.get("/export/account.json"),
        rep.post(f"/callbacks/{kept_callback}/snooze", {"until": "2030-02-01T10:00:00Z"}),
        rep.delete(f"/callbacks/{kept_callback}"),
        rep.delete(f"/clients/{dropped['id']}"),
    ]
    assert [r.status_code for r in answers if r.status_code >= 400] == []
    touching = [s for s in statements if "callbacks.status" in s]
    assert touching, "the routes above must have read callbacks by status"
    bound = [s for s in touching if BOUND_STATUS.search(s)]
    assert bound == []
