"""A phone's outbox replayed again and again, and by two workers at once: exactly one of each.

The phone keeps every change until it sees a 2xx, so a lost answer means the same touch is sent
again, and a phone that comes back online while another tab syncs sends the same batch twice at
once. The touch's id is the idempotency key (API.md): whatever the replays, the server holds
exactly one row per touch, and the derived fields (a client's last touch, last reach, attempts
since reached; which promises are open or kept) are what in-order arrival would have given.

The expected state is worked out here from the batch alone, by the rules of API.md, not by
reading the service code: a promise is kept by the first later touch of the same client.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import Rep
from webapp.models import callbacks, clients, touches

BATCH = 200
CLIENTS = 20


def make_batch(rep: Rep, seed: int) -> list[dict[str, Any]]:
    """200 touches over 20 clients, in the order the phone made them (its outbox order)."""
    rng = random.Random(seed)
    client_ids = [rep.add_client(f"Replay {seed}-{i}")["id"] for i in range(CLIENTS)]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=40)
    batch = []
    for n in range(BATCH):
        happened = start + timedelta(hours=4 * n, minutes=rng.randrange(60))
        body: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "client_id": rng.choice(client_ids),
            "outcome": rng.choice(["reached", "left_message", "no_answer", "no_answer"]),
            "happened_at": happened.isoformat(),
        }
        if rng.random() < 0.3:
            body["note"] = rng.choice(["asked for a quote", "call after lunch", "ça va — écrit"])
        if rng.random() < 0.4:
            body["callback_at"] = (happened + timedelta(days=rng.randrange(1, 30))).isoformat()
            body["callback_id"] = str(uuid.uuid4())
        batch.append(body)
    return batch


def expected_state(batch: list[dict[str, Any]]) -> tuple[dict, dict]:
    """(clients, callbacks) derived fields for the batch, by API.md's rules."""
    by_client: dict[str, list[dict[str, Any]]] = {}
    for body in batch:
        by_client.setdefault(body["client_id"], []).append(body)
    want_clients, want_callbacks = {}, {}
    for client_id, log in by_client.items():
        log = sorted(log, key=lambda b: b["happened_at"])
        at = [datetime.fromisoformat(b["happened_at"]) for b in log]
        reached = [t for t, b in zip(at, log, strict=True) if b["outcome"] == "reached"]
        last_reached = max(reached) if reached else None
        want_clients[client_id] = {
            "last_touch_at": max(at),
            "last_reached_at": last_reached,
            "attempts_since_reached": sum(
                1
                for t, b in zip(at, log, strict=True)
                if b["outcome"] != "reached" and (last_reached is None or t > last_reached)
            ),
        }
        for i, body in enumerate(log):
            if "callback_at" not in body:
                continue
            later = at[i + 1 :]
            want_callbacks[body["callback_id"]] = {
                "client_id": client_id,
                "touch_id": body["id"],
                "origin_at": at[i],
                "due_at": datetime.fromisoformat(body["callback_at"]),
                "status": "done" if later else "open",
                "done_at": min(later) if later else None,
            }
    return want_clients, want_callbacks


def assert_state(app: Any, batch: list[dict[str, Any]]) -> None:
    """Exactly one row per touch and promise of the batch, with the right derived fields."""
    want_clients, want_callbacks = expected_state(batch)
    ids = [b["id"] for b in batch]
    engine = app.extensions["sqlalchemy"].engine
    with engine.connect() as conn:
        stored = conn.execute(
            sa.select(touches.c.id, touches.c.client_id, touches.c.outcome, touches.c.note).where(
                touches.c.id.in_(ids)
            )
        ).all()
        got_clients = {
            row.id: row._asdict()
            for row in conn.execute(
                sa.select(
                    clients.c.id,
                    clients.c.last_touch_at,
                    clients.c.last_reached_at,
                    clients.c.attempts_since_reached,
                ).where(clients.c.id.in_(want_clients))
            )
        }
        got_callbacks = {
            row.id: row._asdict()
            for row in conn.execute(
                sa.select(
                    callbacks.c.id,
                    callbacks.c.client_id,
                    callbacks.c.touch_id,
                    callbacks.c.origin_at,
                    callbacks.c.due_at,
                    callbacks.c.status,
                    callbacks.c.done_at,
                ).where(callbacks.c.client_id.in_(want_clients))
            )
        }
    assert len(stored) == BATCH and len({row.id for row in stored}) == BATCH
    sent = {b["id"]: b for b in batch}
    for row in stored:
        body = sent[row.id]
        assert (row.client_id, row.outcome, row.note) == (
            body["client_id"],
            body["outcome"],
            body.get("note"),
        )
    for client_id, want in want_clients.items():
        got = got_clients[client_id]
        got.pop("id")
        assert got == want, client_id
    assert set(got_callbacks) == set(want_callbacks)
    for callback_id, want in want_callbacks.items():
        got = got_callbacks[callback_id]
        got.pop("id")
        assert got == want, callback_id


def test_a_batch_of_200_replayed_three_times_leaves_200_rows(app, rep):
    batch = make_batch(rep, seed=7)
    first = [rep.post("/touches", body) for body in batch]
    assert [r.status_code for r in first] == [201] * BATCH, [r.json for r in first[:3]]
    for _ in range(2):
        again = [rep.post("/touches", body) for body in batch]
        assert [r.status_code for r in again] == [200] * BATCH
        # A replay answers what the first send stored, so the phone may take either.
        assert [r.json for r in again] == [r.json for r in first]
    assert_state(app, batch)
    # The rep's own view agrees: every touch listed once.
    listed = rep.get("/touches", query_string={"limit": 500}).json["items"]
    assert Counter(t["id"] for t in listed) == Counter(b["id"] for b in batch)


@pytest.mark.parametrize("orders", ["same", "opposite"])
def test_two_replays_racing_on_two_workers_leave_200_rows(app, rep, orders):
    """Two threads, each on its own connection, send the whole batch at the same moment.

    "same": both in outbox order, so they collide on every id. "opposite": one from the end, so
    half the touches arrive after later ones (the recompute path, promises born kept).
    """
    batch = make_batch(rep, seed=11)
    sequences = [batch, batch if orders == "same" else batch[::-1]]
    answers: list[list[tuple[str, int]]] = [[], []]
    failures: list[BaseException] = []
    barrier = threading.Barrier(2)

    def replay(worker: int) -> None:
        client = rep.client.application.test_client()
        client.set_cookie("touchbase_session", rep.client.get_cookie("touchbase_session").value)
        headers = {"X-CSRFToken": rep.token}
        try:
            barrier.wait()
            for body in sequences[worker]:
                resp = client.post("/api/v1/touches", json=body, headers=headers)
                answers[worker].append((body["id"], resp.status_code))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=replay, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures

    statuses: dict[str, list[int]] = {}
    for worker in answers:
        for touch_id, status in worker:
            statuses.setdefault(touch_id, []).append(status)
    assert len(statuses) == BATCH
    # Each touch was stored by exactly one of the two, and the other was told it was a replay.
    assert {tuple(sorted(s)) for s in statuses.values()} == {(200, 201)}
    if orders == "opposite":  # each worker stored its first half: they really overlapped
        assert all(any(status == 201 for _, status in worker) for worker in answers)
    assert_state(app, batch)
    # And a third, late replay of the whole batch changes nothing.
    assert {rep.post("/touches", body).status_code for body in batch} == {200}
    assert_state(app, batch)
