"""GET /today: reasons, order and counts, in the rep's own time zone, with frozen time."""

from __future__ import annotations

from datetime import UTC, datetime

import time_machine

from tests.conftest import register_rep

# Monday 23 November 2026, 10:00 in Los Angeles (18:00 UTC).
NOW = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)


class Frozen:
    """Freeze time at ``iso``; the rep logs in again, as sessions expire over months."""

    def __init__(self, iso: str, rep=None):
        self.travel = time_machine.travel(datetime.fromisoformat(iso), tick=False)
        self.rep = rep

    def __enter__(self):
        traveller = self.travel.__enter__()
        if self.rep is not None:
            self.rep.login()
        return traveller

    def __exit__(self, *exc):
        self.travel.__exit__(*exc)


def test_today_order_and_reasons(app):
    with Frozen("2026-01-01T12:00:00+00:00") as clock:
        rep = register_rep(app, timezone="America/Los_Angeles")
        never = []
        for i in range(3):
            clock.shift(60)  # distinct creation times: never-contacted go oldest first
            never.append(rep.add_client(f"Never {i}"))
    with Frozen("2026-03-01T12:00:00+00:00", rep):
        rep.add_client("Never later")
        called_back = rep.add_client("Overdue promise")
        due_today = rep.add_client("Promise today")
        tomorrow = rep.add_client("Promise tomorrow", cadence_days=7)
        monthly = rep.add_client("Monthly", cadence_days=30)
        tier_a = rep.add_client("Tier A", tags=["a"])
        fresh = rep.add_client("Fresh", cadence_days=30)
        quiet = rep.add_client("Quiet")
        recent = rep.add_client("Recent")
        archived = rep.add_client("Archived")
    with Frozen("2026-11-18T18:00:00+00:00", rep):
        assert (
            rep.touch(
                called_back["id"], "left_message", callback_at="2026-11-20T09:00:00-08:00"
            ).status_code
            == 201
        )
        assert (
            rep.touch(
                due_today["id"], "no_answer", callback_at="2026-11-23T15:00:00-08:00"
            ).status_code
            == 201
        )
        assert (
            rep.touch(
                tomorrow["id"], "no_answer", callback_at="2026-11-24T09:00:00-08:00"
            ).status_code
            == 201
        )
        assert (
            rep.touch(
                archived["id"], "no_answer", callback_at="2026-11-19T09:00:00-08:00"
            ).status_code
            == 201
        )
        assert (
            rep.touch(quiet["id"], "reached", happened_at="2026-04-01T17:00:00Z").status_code == 201
        )
        assert (
            rep.touch(monthly["id"], "reached", happened_at="2026-10-01T17:00:00Z").status_code
            == 201
        )
        assert (
            rep.touch(tier_a["id"], "reached", happened_at="2026-10-20T17:00:00Z").status_code
            == 201
        )
        assert (
            rep.touch(fresh["id"], "reached", happened_at="2026-11-10T17:00:00Z").status_code == 201
        )
        assert (
            rep.touch(recent["id"], "reached", happened_at="2026-11-01T17:00:00Z").status_code
            == 201
        )
        rep.delete(f"/clients/{archived['id']}")
    with Frozen(NOW.isoformat(), rep):
        # 07:30 UTC on the 23rd is still Sunday evening in Los Angeles: not today.
        assert (
            rep.touch(recent["id"], "no_answer", happened_at="2026-11-23T07:30:00Z").status_code
            == 201
        )
        assert (
            rep.touch(recent["id"], "no_answer", happened_at="2026-11-23T17:30:00Z").status_code
            == 201
        )
        resp = rep.get("/today")
    assert resp.status_code == 200, resp.json
    today = resp.json
    assert today["date"] == "2026-11-23"
    assert today["goal"] == 10 and today["done_today"] == 1
    got = [
        (i["client"]["name"], i["reason"], i["overdue"], i["days_overdue"]) for i in today["items"]
    ]
    assert got == [
        ("Overdue promise", "callback", True, 3),
        ("Promise today", "callback", False, 0),
        ("Monthly", "cadence", True, 23),
        ("Tier A", "cadence", True, 4),
        ("Never 0", "reconnect", False, 0),
        ("Never 1", "reconnect", False, 0),
        ("Never 2", "reconnect", False, 0),
        ("Never later", "reconnect", False, 0),
        ("Quiet", "reconnect", False, 0),
    ]
    first = today["items"][0]
    assert first["due_at"] == "2026-11-20T17:00:00+00:00"
    assert first["callback_id"] == first["client"]["open_callback"]["id"]
    assert today["items"][2]["due_at"] == "2026-10-31T16:00:00+00:00"  # 09:00 PDT
    assert today["items"][-1]["due_at"] is None
    assert never[0]["id"] == today["items"][4]["client"]["id"]


def test_reconnect_is_a_few_a_day(app):
    with Frozen("2026-01-01T12:00:00+00:00") as clock:
        rep = register_rep(app)
        for i in range(8):
            clock.shift(60)
            rep.add_client(f"Old {i}")
    with Frozen(NOW.isoformat(), rep):
        items = rep.get("/today").json["items"]
    assert [i["client"]["name"] for i in items] == [f"Old {i}" for i in range(5)]


def test_day_boundaries_in_auckland(app):
    with Frozen("2026-11-20T00:00:00+00:00"):
        rep = register_rep(app, timezone="Pacific/Auckland")
        late = rep.add_client("Late tonight", cadence_days=365)
        after_midnight = rep.add_client("Just after midnight", cadence_days=365)
        assert rep.touch(late["id"], callback_at="2026-11-24T23:30:00+13:00").status_code == 201
        assert (
            rep.touch(after_midnight["id"], callback_at="2026-11-25T00:30:00+13:00").status_code
            == 201
        )
    # 18:00 UTC on the 23rd is 07:00 on Tuesday the 24th in Auckland.
    with time_machine.travel(NOW, tick=False):
        today = rep.get("/today").json
    assert today["date"] == "2026-11-24"
    assert [i["client"]["name"] for i in today["items"]] == ["Late tonight"]


def test_goal_follows_settings_and_empty_list(rep):
    rep.patch("/me", {"daily_goal": 3})
    today = rep.get("/today").json
    assert today == {"date": today["date"], "items": [], "done_today": 0, "goal": 3}
