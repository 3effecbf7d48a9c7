"""Two workers receive the same touch at the same moment: one row, one 201, the rest 200."""

from __future__ import annotations

import threading
import uuid

import sqlalchemy as sa

ROUNDS = 15
THREADS = 4


def _clone(rep):
    """A second test client carrying the same session cookie (another tab, another worker)."""
    client = rep.client.application.test_client()
    cookie = rep.client.get_cookie("touchbase_session")
    client.set_cookie("touchbase_session", cookie.value)
    return client


def test_same_touch_at_the_same_moment(app, rep):
    client_id = rep.add_client()["id"]
    clients = [_clone(rep) for _ in range(THREADS)]
    headers = {"X-CSRFToken": rep.token}
    for _ in range(ROUNDS):
        body = {
            "id": str(uuid.uuid4()),
            "client_id": client_id,
            "outcome": "left_message",
            "callback_at": "2030-01-01T09:00:00Z",
            "callback_id": str(uuid.uuid4()),
        }
        barrier = threading.Barrier(THREADS)
        statuses: list[int] = []

        def send(client, body=body, barrier=barrier, statuses=statuses):
            barrier.wait()
            resp = client.post("/api/v1/touches", json=body, headers=headers)
            statuses.append(resp.status_code)

        threads = [threading.Thread(target=send, args=(c,)) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(statuses) == [200] * (THREADS - 1) + [201], statuses

    engine = app.extensions["sqlalchemy"].engine
    with engine.connect() as conn:
        touches = conn.execute(sa.text("SELECT count(*) FROM touches")).scalar_one()
        callbacks = conn.execute(sa.text("SELECT count(*) FROM callbacks")).scalar_one()
    assert touches == ROUNDS and callbacks == ROUNDS
    client = rep.get(f"/clients/{client_id}").json
    assert client["attempts_since_reached"] == ROUNDS


def test_concurrent_touches_on_one_client_all_count(app, rep):
    # Different ids, same client, at once: the derived counters must see every one.
    client_id = rep.add_client()["id"]
    clients = [_clone(rep) for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS)
    headers = {"X-CSRFToken": rep.token}
    statuses: list[int] = []

    def send(client):
        barrier.wait()
        for _ in range(5):
            body = {"id": str(uuid.uuid4()), "client_id": client_id, "outcome": "no_answer"}
            statuses.append(client.post("/api/v1/touches", json=body, headers=headers).status_code)

    threads = [threading.Thread(target=send, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [201] * THREADS * 5
    assert rep.get(f"/clients/{client_id}").json["attempts_since_reached"] == THREADS * 5
