"""Each figure of GET /stats, from a call log built through the API, with frozen time.

The log is written the way a phone writes it: touches with ``happened_at`` in the past (a late
sync), callbacks promised by touches and kept by later ones, snoozed, cancelled. The derived
client fields come from the app's own code, so the figures are checked against the rules, not
against rows typed by hand. Runs on SQLite, and on PostgreSQL when TEST_DATABASE_URL is set.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine

from tests.conftest import Rep, register_rep
from webapp.db import db
from webapp.services import stats

LA = "America/Los_Angeles"
AKL = "Pacific/Auckland"


def frozen(zone: str, *args: int):
    """Freeze the clock at a local wall time in ``zone``."""
    return time_machine.travel(datetime(*args, tzinfo=ZoneInfo(zone)), tick=False)


def at(zone: str, *args: int) -> str:
    """A local wall time in ``zone`` as an ISO 8601 instant with its offset."""
    return datetime(*args, tzinfo=ZoneInfo(zone)).isoformat()


class Log:
    """A rep and their log, written through the API."""

    def __init__(self, rep: Rep, zone: str) -> None:
        self.rep = rep
        self.zone = zone

    def client(self, name: str, **fields: Any) -> str:
        return self.rep.add_client(name, **fields)["id"]

    def call(
        self, client_id: str, when: tuple[int, ...], outcome: str = "no_answer", **fields: Any
    ) -> dict:
        if "callback" in fields:
            fields["callback_at"] = at(self.zone, *fields.pop("callback"))
        resp = self.rep.touch(client_id, outcome, happened_at=at(self.zone, *when), **fields)
        assert resp.status_code == 201, resp.json
        return resp.json

    def stats(self) -> dict:
        resp = self.rep.get("/stats")
        assert resp.status_code == 200, resp.json
        return resp.json

    def settings(self, **changes: Any) -> None:
        assert self.rep.patch("/me", changes).status_code == 200


@pytest.fixture
def la(app):
    with frozen(LA, 2026, 11, 25, 12, 0):  # Wednesday 25 November 2026, noon
        yield Log(register_rep(app, timezone=LA), LA)


def ids(entries: list[dict]) -> list[str]:
    return [entry["client"]["id"] for entry in entries]


# --- today and the streak --------------------------------------------------------------------


def test_today_counts_calls_reached_and_the_goal(la):
    dana, eli = la.client("Dana"), la.client("Eli")
    la.call(dana, (2026, 11, 25, 0, 5), "reached")
    la.call(eli, (2026, 11, 25, 9, 0))
    la.call(eli, (2026, 11, 25, 11, 0), "left_message")
    la.call(dana, (2026, 11, 24, 23, 55), "reached")  # yesterday, five minutes before midnight
    body = la.stats()
    assert body["date"] == "2026-11-25"
    assert body["today"] == {"calls": 3, "reached": 1, "promises_kept": 0, "goal": 10}
    assert body["streak"] == {"days": 0, "goal": 10, "weekends": False, "met_today": False}


def test_streak_skips_weekends_and_counts_today_once_met(app):
    with frozen(LA, 2026, 11, 23, 12, 0):  # Monday
        log = Log(register_rep(app, timezone=LA), LA)
        log.settings(daily_goal=2)
        c = log.client("Dana")
        for day in (20, 19):  # Friday and Thursday: goal met
            log.call(c, (2026, 11, day, 9, 0))
            log.call(c, (2026, 11, day, 10, 0))
        log.call(c, (2026, 11, 18, 9, 0))  # Wednesday: one call, below the goal
        log.call(c, (2026, 11, 22, 9, 0))  # Sunday: one call, which does not matter
        assert log.stats()["streak"] == {
            "days": 2,
            "goal": 2,
            "weekends": False,
            "met_today": False,
        }

        log.call(c, (2026, 11, 23, 8, 0))
        assert log.stats()["streak"]["days"] == 2  # today not met yet, and not a break
        log.call(c, (2026, 11, 23, 9, 0))
        assert log.stats()["streak"] == {"days": 3, "goal": 2, "weekends": False, "met_today": True}

        # With weekends counted, Sunday's single call breaks the run after today.
        log.settings(streak_weekends=True)
        assert log.stats()["streak"] == {"days": 1, "goal": 2, "weekends": True, "met_today": True}
        # The goal is today's: lowered to 1, Sunday's single call counts from now on.
        log.settings(daily_goal=1)
        assert log.stats()["streak"]["days"] == 2  # today and Sunday; Saturday had no call
        log.settings(streak_weekends=False)
        assert log.stats()["streak"]["days"] == 4  # today, Friday, Thursday, Wednesday


@pytest.mark.parametrize(
    ("zone", "days", "now"),
    [
        # Los Angeles, spring forward (Sun 8 March 2026, 02:00 -> 03:00): around the change,
        # 23:30 and 00:30 fall on the day the wall clock says.
        (LA, [(2026, 3, 7, 23, 30), (2026, 3, 8, 23, 30), (2026, 3, 9, 0, 30)], (2026, 3, 10, 12)),
        # Los Angeles, fall back (Sun 1 November 2026, 02:00 -> 01:00).
        (
            LA,
            [(2026, 10, 31, 23, 30), (2026, 11, 1, 23, 30), (2026, 11, 2, 0, 30)],
            (2026, 11, 3, 12),
        ),
        # Auckland, back (Sun 5 April 2026, 03:00 -> 02:00), and forward (Sun 27 September).
        (AKL, [(2026, 4, 4, 23, 30), (2026, 4, 5, 23, 30), (2026, 4, 6, 0, 30)], (2026, 4, 7, 12)),
        (
            AKL,
            [(2026, 9, 26, 23, 30), (2026, 9, 27, 23, 30), (2026, 9, 28, 0, 30)],
            (2026, 9, 29, 12),
        ),
    ],
    ids=["la-spring", "la-fall", "akl-april", "akl-september"],
)
def test_streak_and_day_counts_across_dst(app, zone, days, now):
    with frozen(zone, *now):
        log = Log(register_rep(app, timezone=zone), zone)
        log.settings(daily_goal=1, streak_weekends=True)
        c = log.client("Dana")
        for when in days:
            log.call(c, when)
        body = log.stats()
        # One call on each of the three days before today: a fixed offset would put one of the
        # calls on the wrong side of a midnight, leaving a day empty.
        assert body["streak"] == {"days": 3, "goal": 1, "weekends": True, "met_today": False}
        assert body["today"]["calls"] == 0
        log.call(c, (*now[:3], 0, 1))
        assert log.stats()["streak"] == {"days": 4, "goal": 1, "weekends": True, "met_today": True}


def test_today_is_the_reps_date_far_from_utc(app):
    # 09:00 on Monday 6 April in Auckland is still Sunday 5 April in UTC.
    with frozen(AKL, 2026, 4, 6, 9, 0):
        log = Log(register_rep(app, timezone=AKL), AKL)
        c = log.client("Dana")
        log.call(c, (2026, 4, 6, 0, 30))
        log.call(c, (2026, 4, 5, 23, 30), "reached")
        body = log.stats()
        assert body["date"] == "2026-04-06"
        assert (body["today"]["calls"], body["today"]["reached"]) == (1, 0)
        assert body["weeks"]["this"]["start"] == "2026-04-06"
        assert (body["weeks"]["last"]["calls"], body["weeks"]["last"]["reached"]) == (1, 1)


# --- weeks -----------------------------------------------------------------------------------


def week_summary(app, user_id: str, monday: date) -> dict:
    with app.app_context():
        return stats.week_summary(db.session, user_id, monday)


def test_weeks_run_monday_to_sunday_in_the_reps_zone(app):
    with frozen(AKL, 2026, 11, 25, 10, 0):  # Wednesday
        log = Log(register_rep(app, timezone=AKL), AKL)
        c = log.client("Dana")
        log.call(c, (2026, 11, 23, 0, 30), "reached")  # Monday 00:30: this week (Sunday in UTC)
        log.call(c, (2026, 11, 25, 9, 0))
        log.call(c, (2026, 11, 22, 23, 30), "reached")  # Sunday 23:30: last week
        log.call(c, (2026, 11, 16, 0, 10))  # last Monday, just after midnight
        log.call(c, (2026, 11, 15, 23, 50), "reached")  # the Sunday before: neither week
        body = log.stats()
        this, last = body["weeks"]["this"], body["weeks"]["last"]
        assert (this["start"], this["end"]) == ("2026-11-23", "2026-11-29")
        assert (last["start"], last["end"]) == ("2026-11-16", "2026-11-22")
        assert (this["calls"], this["reached"], this["reach_rate"]) == (2, 1, 0.5)
        assert (last["calls"], last["reached"], last["reach_rate"]) == (2, 1, 0.5)

        # The push's week_summary gives the same figures as the app's.
        user_id = log.rep.user["id"]
        assert week_summary(app, user_id, date(2026, 11, 16)) == {
            **last,
            "start": date(2026, 11, 16),
            "end": date(2026, 11, 22),
        }
        assert week_summary(app, user_id, date(2026, 11, 23))["calls"] == 2
        older = week_summary(app, user_id, date(2026, 11, 9))
        assert (older["calls"], older["reached"], older["reach_rate"]) == (1, 1, 1.0)
        ahead = week_summary(app, user_id, date(2026, 11, 30))
        assert (ahead["calls"], ahead["promises_due"], ahead["reach_rate"]) == (0, 0, None)


def test_week_summary_refuses_a_day_that_is_not_a_monday_and_an_unknown_rep(app, rep):
    with pytest.raises(ValueError, match="Monday"):
        week_summary(app, rep.user["id"], date(2026, 11, 24))
    with pytest.raises(LookupError):
        week_summary(app, "00000000-0000-4000-8000-000000000000", date(2026, 11, 23))


def test_an_empty_log_answers_zeros_and_nulls(la):
    body = la.stats()
    assert body["today"] == {"calls": 0, "reached": 0, "promises_kept": 0, "goal": 10}
    assert body["streak"]["days"] == 0
    assert [t["share"] for t in body["coverage"]["tiers"]] == [None, None, None]
    assert [t["tier"] for t in body["coverage"]["tiers"]] == ["A", "B", "C"]
    assert [t["cadence_days"] for t in body["coverage"]["tiers"]] == [30, 90, 180]
    assert body["coverage"]["untiered"] == 0
    assert body["promises"] == {"window_days": 30, "due": 0, "kept": 0, "share": None, "broken": []}
    assert body["persistence"] == [] and body["inactive"] == []
    for week in body["weeks"].values():
        assert week["reach_rate"] is None and week["promises_share"] is None
        assert week["coverage"] == {"A": None, "B": None, "C": None}


# --- coverage --------------------------------------------------------------------------------


def test_coverage_per_tier_with_own_rhythms_and_several_tags(la):
    # Today is Wednesday 25 November: 30 days back is Monday 26 October (local).
    a_on_edge = la.client("A on the edge", tags=["A"])
    la.call(a_on_edge, (2026, 10, 26, 0, 5), "reached")  # 30 days: still within
    a_late = la.client("A a day late", tags=["tier a"])
    la.call(a_late, (2026, 10, 25, 23, 55), "reached")  # 31 days: one day over
    a_never = la.client("A never reached", tags=["A"])
    la.call(a_never, (2026, 11, 24, 9, 0))
    a_and_c = la.client("A and C", tags=["C", "Tier:A"])  # counted in A, the shorter rhythm
    la.call(a_and_c, (2026, 11, 20, 9, 0), "reached")
    a_weekly = la.client("A weekly", tags=["A"], cadence_days=7)  # its own rhythm wins
    la.call(a_weekly, (2026, 11, 15, 9, 0), "reached")  # 10 days: 3 over
    a_slow = la.client("A every 60 days", tags=["a"], cadence_days=60)
    la.call(a_slow, (2026, 10, 11, 9, 0), "reached")  # 45 days: within its own 60
    a_touched_not_reached = la.client("A left messages", tags=["A"])
    la.call(a_touched_not_reached, (2026, 9, 1, 9, 0), "reached")
    la.call(a_touched_not_reached, (2026, 11, 24, 9, 0), "left_message")  # 85 days since reached
    b_late = la.client("B late", tags=["b", "wholesale"])
    la.call(b_late, (2026, 8, 17, 9, 0), "reached")  # 100 days: 10 over
    archived = la.client("A archived", tags=["A"])
    assert la.rep.delete(f"/clients/{archived}").status_code == 204
    la.client("No tags")
    la.client("Other tags", tags=["wholesale", "tier d"])

    cover = la.stats()["coverage"]
    a, b, c = cover["tiers"]
    assert (a["tier"], a["cadence_days"], a["clients"], a["within"], a["share"]) == (
        "A",
        30,
        7,
        3,
        0.429,
    )
    # Never reached first; then the most days over.
    assert ids(a["slipping"]) == [a_never, a_touched_not_reached, a_weekly, a_late]
    assert [(s["days_since_reached"], s["days_over"]) for s in a["slipping"]] == [
        (None, 0),
        (85, 55),
        (10, 3),
        (31, 1),
    ]
    assert (b["clients"], b["within"], b["share"]) == (1, 0, 0.0)
    assert [(s["client"]["id"], s["days_over"]) for s in b["slipping"]] == [(b_late, 10)]
    assert (c["clients"], c["within"], c["share"], c["slipping"]) == (0, 0, None, [])
    assert cover["untiered"] == 2
    entry = a["slipping"][1]["client"]
    assert entry == {
        "id": a_touched_not_reached,
        "name": "A left messages",
        "phone": None,
        "company": None,
        "tags": ["A"],
        "attempts_since_reached": 1,
        "last_touch_at": "2026-11-24T17:00:00+00:00",
        "last_reached_at": "2026-09-01T16:00:00+00:00",
    }

    # The rep's own tier rhythm: A at 40 days takes the 31-day client back in, and the weekly
    # summary carries the same shares.
    la.settings(tiers={"A": 40})
    body = la.stats()
    a = body["coverage"]["tiers"][0]
    assert (a["cadence_days"], a["within"], ids(a["slipping"])) == (
        40,
        4,
        [a_never, a_touched_not_reached, a_weekly],
    )
    assert body["weeks"]["this"]["coverage"] == {"A": 0.571, "B": 0.0, "C": None}
    assert body["weeks"]["last"]["coverage"] == body["weeks"]["this"]["coverage"]
    # Tier B made shorter than A: the client tagged both A and C still follows A (C is longer).
    la.settings(tiers={"A": 40, "B": 20, "C": 10})
    tiers = la.stats()["coverage"]["tiers"]
    assert [t["clients"] for t in tiers] == [6, 1, 1]


def test_slipping_keeps_the_ten_most_overdue_across_rhythms(la):
    made = {}
    for n in range(12):  # tier rhythm (30 days), reached 31..42 days ago: 1..12 days over
        cid = la.client(f"Tier {n:02d}", tags=["A"])
        la.call(cid, (2026, 10, 25 - n, 9, 0), "reached")
        made[cid] = n + 1
    for name, when, over in (("Own 13", (2026, 11, 5, 9, 0), 13), ("Own 1", (2026, 11, 17), 1)):
        cid = la.client(name, tags=["A"], cadence_days=7)  # 20 and 8 days ago, weekly
        la.call(cid, when, "reached")
        made[cid] = over
    slipping = la.stats()["coverage"]["tiers"][0]["slipping"]
    assert [s["days_over"] for s in slipping] == [13, 12, 11, 10, 9, 8, 7, 6, 5, 4]
    assert all(made[s["client"]["id"]] == s["days_over"] for s in slipping)


# --- promises --------------------------------------------------------------------------------


def test_promises_kept_broken_late_cancelled_snoozed_and_today(la):
    def promise(name: str, made: tuple, due: tuple) -> tuple[str, str]:
        cid = la.client(name)
        return cid, la.call(cid, made, callback=due)["callback_id"]

    kept_id, kept = promise("Kept", (2026, 11, 20, 10), (2026, 11, 23, 9))
    la.call(kept_id, (2026, 11, 23, 16, 0))  # later the same day: kept
    late_id, late = promise("Late", (2026, 11, 18, 10), (2026, 11, 20, 9))
    la.call(late_id, (2026, 11, 23, 10, 0))  # three days after: broken, done
    open_id, still_open = promise("Open", (2026, 11, 17, 10), (2026, 11, 19, 9))
    cancelled_id, cancelled = promise("Cancelled", (2026, 11, 16, 10), (2026, 11, 18, 9))
    assert la.rep.delete(f"/callbacks/{cancelled}").status_code == 204
    _snoozed_id, snoozed = promise("Snoozed", (2026, 11, 18, 10), (2026, 11, 20, 9))
    moved = la.rep.post(f"/callbacks/{snoozed}/snooze", {"until": at(LA, 2026, 11, 27, 9)})
    assert moved.status_code == 200
    promise("Due this morning", (2026, 11, 24, 10), (2026, 11, 25, 9))  # open, not broken yet
    today_id, _ = promise("Due this afternoon", (2026, 11, 24, 10), (2026, 11, 25, 15))
    la.call(today_id, (2026, 11, 25, 10, 0))  # kept before it was due
    early_id, _ = promise("Due Monday", (2026, 11, 24, 10), (2026, 11, 30, 9))
    la.call(early_id, (2026, 11, 25, 11, 0))  # kept early, today
    promise("Too old", (2026, 10, 20, 10), (2026, 10, 25, 9))  # 31 days ago: out of the window
    edge_id, edge = promise("Window edge", (2026, 10, 20, 10), (2026, 10, 26, 9))  # 30 days ago
    gone_id, _ = promise("Archived", (2026, 11, 17, 10), (2026, 11, 20, 9))
    assert la.rep.delete(f"/clients/{gone_id}").status_code == 204

    body = la.stats()
    figure = body["promises"]
    # Judged: kept, late, open, kept this afternoon's and the window's edge.
    assert (figure["due"], figure["kept"], figure["share"]) == (5, 2, 0.4)
    assert [(b["callback_id"], b["status"], b["days_late"]) for b in figure["broken"]] == [
        (still_open, "open", 6),
        (edge, "open", 30),
        (late, "done", 3),
    ]
    assert [b["client"]["id"] for b in figure["broken"]] == [open_id, edge_id, late_id]
    first = figure["broken"][0]
    assert (first["due_at"], first["done_at"]) == ("2026-11-19T17:00:00+00:00", None)
    assert figure["broken"][2]["done_at"] == "2026-11-23T18:00:00+00:00"
    assert body["today"]["promises_kept"] == 2  # this afternoon's, and Monday's kept early
    this, last = body["weeks"]["this"], body["weeks"]["last"]
    assert (this["promises_due"], this["promises_kept"], this["promises_share"]) == (2, 2, 1.0)
    assert (last["promises_due"], last["promises_kept"], last["promises_share"]) == (2, 0, 0.0)
    assert {kept, cancelled, snoozed} & {b["callback_id"] for b in figure["broken"]} == set()
    assert cancelled_id not in ids(figure["broken"])


def test_broken_promises_are_capped_open_first(la):
    for n in range(12):
        cid = la.client(f"Late {n:02d}")
        la.call(cid, (2026, 11, 2, 10), callback=(2026, 11, 3 + n, 9))
        la.call(cid, (2026, 11, 24, 10))
    for n in range(10):
        cid = la.client(f"Open {n:02d}")
        la.call(cid, (2026, 11, 2, 10), callback=(2026, 11, 3 + n, 9))
    broken = la.stats()["promises"]["broken"]
    assert len(broken) == 20
    assert [b["status"] for b in broken] == ["open"] * 10 + ["done"] * 10
    names = [b["client"]["name"] for b in broken]
    assert names == [f"Open {n:02d}" for n in range(9, -1, -1)] + [
        f"Late {n:02d}" for n in range(11, 1, -1)
    ]


# --- persistence and inactive ----------------------------------------------------------------


def test_persistence_lists_many_unanswered_attempts(la):
    def tries(name: str, outcomes: list[str], day: int, **fields: Any) -> str:
        cid = la.client(name, **fields)
        for hour, outcome in enumerate(outcomes, start=8):
            la.call(cid, (2026, 11, day, hour, 0), outcome)
        return cid

    four = tries("Four", ["reached"] + ["no_answer"] * 4, 20)
    three_older = tries("Three older", ["no_answer", "left_message", "no_answer"], 18)
    three_newer = tries("Three newer", ["left_message"] * 3, 23)
    tries("Two", ["no_answer"] * 2, 20)
    tries("Reached at last", ["no_answer"] * 5 + ["reached"], 19)
    gone = tries("Archived", ["no_answer"] * 6, 19)
    assert la.rep.delete(f"/clients/{gone}").status_code == 204
    # A call logged late (happened before the others) still counts in happened_at order.
    la.call(three_newer, (2026, 11, 2, 9, 0), "reached")
    listed = la.stats()["persistence"]
    assert [(e["client"]["id"], e["attempts"]) for e in listed] == [
        (four, 4),
        (three_older, 3),
        (three_newer, 3),
    ]
    assert listed[0]["client"]["attempts_since_reached"] == 4


def test_inactive_clients_come_with_an_opener(app):
    with frozen(LA, 2026, 1, 5, 9, 0) as clock:
        log = Log(register_rep(app, timezone=LA), LA)
        never_old = log.client("Never, added first", company="Acme")
        clock.shift(60)
        never_new = log.client("Never, added later")
    with frozen(LA, 2026, 11, 25, 12, 0):
        log.rep.login()
        log.settings(prompts=["Still using the blue model?"])
        quiet = log.client(
            "Quiet", company="Hushco", talking_points="- ask how the new warehouse is going"
        )
        log.call(quiet, (2026, 4, 28, 10), "reached", note="wants the spring catalogue.")
        log.call(quiet, (2026, 4, 29, 10), "no_answer")  # the last call has no note
        plain = log.client("Plain")
        log.call(plain, (2026, 9, 1, 10), "reached", note="")
        recent = []
        for n in range(8):
            cid = log.client(f"Recent {n}")
            log.call(cid, (2026, 11, 10 + n, 10), "reached")
            recent.append(cid)
        gone = log.client("Archived and silent")
        assert log.rep.delete(f"/clients/{gone}").status_code == 204

        listed = log.stats()["inactive"]
        assert len(listed) == 10
        assert ids(listed)[:4] == [never_old, never_new, quiet, plain]
        assert ids(listed)[4:] == recent[:6]
        assert [e["days_silent"] for e in listed[:5]] == [None, None, 210, 85, 15]
        assert listed[0]["opener"] == (
            "You haven't spoken with Acme yet. Still using the blue model?"
        )
        assert listed[2]["opener"] == (
            "It's been 7 months since you spoke with Hushco. "
            "Last time: “wants the spring catalogue”. Ask how the new warehouse is going."
        )
        assert (
            listed[3]["opener"] == "It's been 2 months since you spoke. Still using the blue model?"
        )
