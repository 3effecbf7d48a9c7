"""The call log: idempotent writes, outcome effects, promises kept, and late arrivals."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import register_rep


def _count(app, table):
    with app.extensions["sqlalchemy"].engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


def test_touch_is_idempotent_by_id(app, rep):
    client = rep.add_client()
    body = {
        "id": str(uuid.uuid4()),
        "client_id": client["id"],
        "outcome": "left_message",
        "note": "Voicemail",
        "callback_at": "2026-11-26T09:00:00+13:00",
    }
    first = rep.post("/touches", body)
    assert first.status_code == 201, first.json
    assert first.json["callback_at"] == "2026-11-25T20:00:00+00:00"
    again = rep.post("/touches", body)
    assert again.status_code == 200 and again.json == first.json
    # The same instant written with another offset is the same body.
    same = rep.post("/touches", {**body, "callback_at": "2026-11-25T20:00:00Z"})
    assert same.status_code == 200
    for change in (
        {"outcome": "reached"},
        {"note": "Other"},
        {"client_id": rep.add_client()["id"]},
    ):
        assert rep.post("/touches", {**body, **change}).status_code == 409
    assert _count(app, "touches") == 1 and _count(app, "callbacks") == 1


def test_server_default_happened_at_does_not_count_as_different(rep):
    client = rep.add_client()
    body = {"id": str(uuid.uuid4()), "client_id": client["id"], "outcome": "no_answer"}
    first = rep.post("/touches", body)
    again = rep.post("/touches", body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json["happened_at"] == first.json["happened_at"]


def test_touch_ids_are_global(rep, other_rep):
    mine = rep.add_client()
    theirs = other_rep.add_client()
    touch_id = str(uuid.uuid4())
    assert (
        rep.post(
            "/touches", {"id": touch_id, "client_id": mine["id"], "outcome": "reached"}
        ).status_code
        == 201
    )
    clash = other_rep.post(
        "/touches", {"id": touch_id, "client_id": theirs["id"], "outcome": "reached"}
    )
    assert clash.status_code == 409
    # Even the very same body from another rep: never answer with someone else's row.
    same = other_rep.post(
        "/touches", {"id": touch_id, "client_id": mine["id"], "outcome": "reached"}
    )
    assert same.status_code == 404


def test_outcome_effects(rep):
    client = rep.add_client()
    cid = client["id"]
    t0 = datetime(2026, 11, 2, 15, tzinfo=UTC)
    rep.touch(cid, "no_answer", happened_at=t0.isoformat())
    rep.touch(cid, "left_message", happened_at=(t0 + timedelta(hours=1)).isoformat())
    got = rep.get(f"/clients/{cid}").json
    assert got["attempts_since_reached"] == 2 and got["last_reached_at"] is None
    assert got["last_touch_at"] == "2026-11-02T16:00:00+00:00"
    rep.touch(cid, "reached", happened_at=(t0 + timedelta(days=1)).isoformat())
    got = rep.get(f"/clients/{cid}").json
    assert got["attempts_since_reached"] == 0
    assert got["last_reached_at"] == got["last_touch_at"] == "2026-11-03T15:00:00+00:00"
    rep.touch(cid, "no_answer", happened_at=(t0 + timedelta(days=2)).isoformat())
    assert rep.get(f"/clients/{cid}").json["attempts_since_reached"] == 1


def test_any_touch_keeps_the_open_promise(rep):
    cid = rep.add_client()["id"]
    callback_id = str(uuid.uuid4())
    made = rep.touch(
        cid,
        "left_message",
        happened_at="2026-11-02T15:00:00+00:00",
        callback_at="2026-11-04T15:00:00+00:00",
        callback_id=callback_id,
    )
    assert made.json["callback_id"] == callback_id
    assert rep.get(f"/clients/{cid}").json["open_callback"] == {
        "id": callback_id,
        "due_at": "2026-11-04T15:00:00+00:00",
    }
    rep.touch(cid, "no_answer", happened_at="2026-11-03T15:00:00+00:00")
    assert rep.get(f"/clients/{cid}").json["open_callback"] is None
    done = rep.get("/callbacks", query_string={"status": "done"}).json["items"]
    assert [(c["id"], c["done_at"]) for c in done] == [(callback_id, "2026-11-03T15:00:00+00:00")]


def test_new_promise_replaces_old(rep):
    cid = rep.add_client()["id"]
    rep.touch(
        cid, "left_message", happened_at="2026-11-02T15:00:00Z", callback_at="2026-11-04T15:00:00Z"
    )
    rep.touch(
        cid, "no_answer", happened_at="2026-11-03T15:00:00Z", callback_at="2026-11-05T15:00:00Z"
    )
    open_ = rep.get("/callbacks", query_string={"status": "open"}).json["items"]
    assert [c["due_at"] for c in open_] == ["2026-11-05T15:00:00+00:00"]


def test_callback_id_reuse_is_a_conflict(rep):
    cid = rep.add_client()["id"]
    cb = str(uuid.uuid4())
    assert rep.touch(cid, callback_at="2030-01-01T09:00:00Z", callback_id=cb).status_code == 201
    clash = rep.touch(cid, callback_at="2030-01-02T09:00:00Z", callback_id=cb)
    assert clash.status_code == 409
    assert rep.get(f"/clients/{cid}/touches").json["items"].__len__() == 1


def test_touch_for_unknown_or_foreign_client_is_404(rep, other_rep):
    theirs = other_rep.add_client()
    assert rep.touch(theirs["id"]).status_code == 404
    assert rep.touch(str(uuid.uuid4())).status_code == 404


def test_touch_validation(rep):
    cid = rep.add_client()["id"]
    cases = [
        ({"outcome": "voicemail"}, "outcome"),
        ({"happened_at": "2026-11-02T15:00:00"}, "happened_at"),
        ({"callback_at": "tomorrow"}, "callback_at"),
        ({"callback_id": str(uuid.uuid4())}, "callback_id"),
        ({"happened_at": "2099-01-01T00:00:00Z"}, "happened_at"),
        ({"surprise": 1}, "surprise"),
    ]
    for extra, field in cases:
        resp = rep.touch(cid, **extra)
        assert resp.status_code == 422, extra
        assert field in resp.json["error"]["fields"], resp.json
    bad_id = rep.post("/touches", {"id": "not-a-uuid", "client_id": cid, "outcome": "reached"})
    assert bad_id.status_code == 422 and "id" in bad_id.json["error"]["fields"]


def test_history_newest_first_with_cursor(rep):
    cid = rep.add_client()["id"]
    base = datetime(2026, 10, 1, 15, tzinfo=UTC)
    for day in (3, 1, 4, 2, 0):
        rep.touch(cid, happened_at=(base + timedelta(days=day)).isoformat())
    page1 = rep.get(f"/clients/{cid}/touches", query_string={"limit": 2}).json
    page2 = rep.get(
        f"/clients/{cid}/touches", query_string={"limit": 2, "cursor": page1["next_cursor"]}
    ).json
    page3 = rep.get(
        f"/clients/{cid}/touches", query_string={"limit": 2, "cursor": page2["next_cursor"]}
    ).json
    days = [int(t["happened_at"][8:10]) for p in (page1, page2, page3) for t in p["items"]]
    assert days == [5, 4, 3, 2, 1] and page3["next_cursor"] is None


def test_sync_lists_touches_by_arrival_across_clients(rep, other_rep):
    first, second = rep.add_client()["id"], rep.add_client()["id"]
    other_rep.touch(other_rep.add_client()["id"])
    early = datetime(2026, 1, 5, 15, tzinfo=UTC).isoformat()
    ids = [
        rep.touch(first).json["id"],
        rep.touch(second, happened_at=early).json["id"],  # a late sync of an old call
        rep.touch(first).json["id"],
    ]
    everything = rep.get("/touches").json
    assert len(everything["items"]) == 3
    assert everything["items"][-1]["id"] == ids[1]  # newest happened_at first

    pages, cursor = [], None
    while True:
        query = {"updated_since": "2000-01-01T00:00:00Z", "limit": 2}
        if cursor:
            query["cursor"] = cursor
        page = rep.get("/touches", query_string=query).json
        pages += page["items"]
        if not (cursor := page["next_cursor"]):
            break
    assert [t["id"] for t in pages] == ids  # arrival order, the old call included
    since = pages[1]["created_at"]
    later = rep.get("/touches", query_string={"updated_since": since}).json["items"]
    assert [t["id"] for t in later] == ids[2:]


# --- Late arrivals: derived fields follow happened_at, not arrival order --------------------

_BASE = datetime(2026, 9, 1, 14, tzinfo=UTC)
_touch_specs = st.lists(
    st.tuples(
        st.integers(0, 40),  # hours after base: collisions allowed
        st.sampled_from(["reached", "left_message", "no_answer"]),
        st.one_of(st.none(), st.integers(1, 200)),  # callback after N hours
    ),
    min_size=1,
    max_size=7,
)


def _state(rep, cid):
    client = rep.get(f"/clients/{cid}").json
    callbacks = rep.get("/callbacks").json["items"]
    derived = {k: client[k] for k in ("last_touch_at", "last_reached_at", "attempts_since_reached")}
    derived["open_callback"] = client["open_callback"]
    return derived, sorted((c["id"], c["status"], c["done_at"]) for c in callbacks)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(specs=_touch_specs, seed=st.integers(0, 2**32))
def test_arrival_order_does_not_matter(app, specs, seed):
    # Two reps each get the same touches: one in happened_at order, one shuffled.
    suffix = uuid.uuid4().hex[:8]
    in_order = register_rep(app, email=f"a{suffix}@example.com")
    shuffled = register_rep(app, email=f"b{suffix}@example.com")
    bodies = []
    for i, (hours, outcome, cb_hours) in enumerate(specs):
        happened = _BASE + timedelta(hours=hours, seconds=i)  # distinct instants
        body = {"outcome": outcome, "happened_at": happened.isoformat()}
        if cb_hours is not None:
            body["callback_at"] = (happened + timedelta(hours=cb_hours)).isoformat()
            body["callback_id"] = f"{i:08d}-0000-4000-8000-{suffix:0>12}"
        bodies.append((happened, body))
    results = []
    for who, order in ((in_order, sorted(bodies, key=lambda b: b[0])), (shuffled, bodies[:])):
        if who is shuffled:
            random.Random(seed).shuffle(order)
        cid = who.add_client()["id"]
        for _, body in order:
            # Callback ids must be globally unique: tag them per rep.
            b = dict(body)
            if "callback_id" in b:
                b["callback_id"] = b["callback_id"][:-1] + ("a" if who is in_order else "b")
            assert who.touch(cid, **b).status_code == 201
        derived, cbs = _state(who, cid)
        if derived["open_callback"]:
            derived["open_callback"]["id"] = derived["open_callback"]["id"][:-1]
        results.append((derived, [(i[:-1], s, d) for i, s, d in cbs]))
    assert results[0] == results[1]
