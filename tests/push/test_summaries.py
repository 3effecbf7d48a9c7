"""The morning digest (and the weekly summary) against the fake push service, in frozen time.

Every test runs on SQLite and, with ``TEST_DATABASE_URL``, on PostgreSQL: the two take their
lease differently (a flock beside the SQLite file; row locks held across the send).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import time_machine

from tests.conftest import register_rep
from tests.push.conftest import subscribe
from tests.push.fake_service import FakePushService, Push, Subscriber, seed_digest_reps
from webapp.dispatch import SUMMARY_GRACE, Dispatcher
from webapp.models import push_subscriptions, users

ROOT = Path(__file__).resolve().parents[2]
CHICAGO = "America/Chicago"
AUCKLAND = "Pacific/Auckland"


def local(zone: str, *args: int) -> datetime:
    """An instant given on the clock of ``zone``."""
    return datetime(*args, tzinfo=ZoneInfo(zone))


def digests(service: FakePushService, sub: Subscriber | None = None) -> list[Push]:
    return [p for p in service.received(sub) if p.payload.get("kind") == "digest"]


def sent_on(app: Any, user_id: str, column: str = "digest_sent_on") -> date | None:
    with app.extensions["sqlalchemy"].engine.connect() as conn:
        return conn.execute(sa.select(users.c[column]).where(users.c.id == user_id)).scalar_one()


def digest_rep(
    app: Any,
    service: FakePushService,
    zone: str = CHICAGO,
    at: str | None = "07:00",
    email: str = "rep@example.com",
) -> tuple[Any, Subscriber]:
    """A rep in ``zone`` with the digest at ``at`` and one subscribed browser. Quiet hours keep
    their default (21:00-08:00), so a 7:00 digest falls inside them."""
    rep = register_rep(app, email=email, timezone=zone)
    resp = rep.patch("/me", {"digest_time": at})
    assert resp.status_code == 200 and resp.json["digest_time"] == at
    assert resp.json["quiet_hours"] == {"start": "21:00", "end": "08:00"}
    return rep, subscribe(rep, service)


def promise_at(rep: Any, name: str, due: datetime) -> None:
    client = rep.add_client(name)
    resp = rep.touch(client["id"], "left_message", callback_at=due.isoformat())
    assert resp.status_code == 201, resp.json


def test_the_digest_goes_out_once_at_the_chosen_time(app, push_service, dispatcher):
    start = local(CHICAGO, 2030, 3, 5, 6, 0)
    with time_machine.travel(start, tick=True) as clock:
        rep, sub = digest_rep(app, push_service)
        promise_at(rep, "Ada Lovelace", local(CHICAGO, 2030, 3, 5, 10, 0))  # today
        promise_at(rep, "Bob Overdue", local(CHICAGO, 2030, 3, 5, 6, 30) - timedelta(days=1))
        promise_at(rep, "Cy Tomorrow", local(CHICAGO, 2030, 3, 6, 9, 0))  # not today
        rep.add_client("Dee Neverrung")  # never touched: a reconnect
        listed = rep.get("/today").json["items"]

        clock.move_to(local(CHICAGO, 2030, 3, 5, 6, 59, 59))
        assert dispatcher.run_once().digests == 0
        assert digests(push_service) == []

        clock.move_to(local(CHICAGO, 2030, 3, 5, 7, 0))
        assert dispatcher.run_once().digests == 1
        (push,) = digests(push_service)
        assert push.subscriber == sub.id
        names = [item["client"]["name"] for item in listed]
        assert len(listed) == 3 and names[2] == "Dee Neverrung"
        assert push.payload == {
            "title": "3 calls today, 2 promised",
            "body": f"{names[0]}, {names[1]}, {names[2]}.",
            "url": "/#/today",
            "callback_id": None,
            "client_id": None,
            "tag": "touchbase-digest",
            "kind": "digest",
        }
        assert push.headers["urgency"] == "normal"
        assert push.headers["topic"] == "touchbase-digest"
        assert 0 < int(push.headers["ttl"]) <= SUMMARY_GRACE.total_seconds()
        assert sent_on(app, rep.user["id"]) == date(2030, 3, 5)

        # Not again that day: not from this dispatcher, not from another.
        clock.move_to(local(CHICAGO, 2030, 3, 5, 7, 30))
        assert dispatcher.run_once().digests == 0
        other = Dispatcher(app, concurrency=1)
        assert other.run_once().digests == 0
        other.close()
        assert len(digests(push_service)) == 1

        # The next morning, at the same time on the clock.
        clock.move_to(local(CHICAGO, 2030, 3, 6, 6, 59))
        assert dispatcher.run_once().digests == 0
        clock.move_to(local(CHICAGO, 2030, 3, 6, 7, 0, 5))
        assert dispatcher.run_once().digests == 1
        assert [p.payload["title"] for p in digests(push_service)][-1].endswith("promised")
        assert sent_on(app, rep.user["id"]) == date(2030, 3, 6)


def test_a_late_dispatcher_sends_the_same_morning_then_skips_the_day(app, push_service, dispatcher):
    with time_machine.travel(local(CHICAGO, 2030, 3, 5, 6, 0), tick=True) as clock:
        rep, _sub = digest_rep(app, push_service)
        # Down from before 7:00 until 9:59: it is still sent.
        clock.move_to(local(CHICAGO, 2030, 3, 5, 9, 59))
        assert dispatcher.run_once().digests == 1
        (push,) = digests(push_service)
        assert int(push.headers["ttl"]) <= 60 + 1  # stale at 10:00: the TTL says so
        # Down until 10:00 the next day: that day's is skipped, for good.
        clock.move_to(local(CHICAGO, 2030, 3, 6, 10, 0))
        assert dispatcher.run_once().digests == 0
        clock.move_to(local(CHICAGO, 2030, 3, 6, 16, 0))
        assert dispatcher.run_once().digests == 0
        assert sent_on(app, rep.user["id"]) == date(2030, 3, 5)
        clock.move_to(local(CHICAGO, 2030, 3, 7, 7, 0))
        assert dispatcher.run_once().digests == 1
        assert len(digests(push_service)) == 2


def test_an_empty_day_says_so(app, push_service, dispatcher):
    with time_machine.travel(local(CHICAGO, 2030, 3, 5, 7, 0), tick=True):
        digest_rep(app, push_service)
        assert dispatcher.run_once().digests == 1
    (push,) = digests(push_service)
    assert push.payload["title"] == "Nothing due today"
    assert push.payload["url"] == "/#/today"


def test_off_when_digest_time_is_null(app, push_service, dispatcher):
    with time_machine.travel(local(CHICAGO, 2030, 3, 5, 6, 0), tick=True) as clock:
        rep, _sub = digest_rep(app, push_service, at=None)
        promise_at(rep, "Ada Lovelace", local(CHICAGO, 2030, 3, 5, 10, 0))
        for hour in range(0, 24, 2):
            clock.move_to(local(CHICAGO, 2030, 3, 5, hour, 0))
            assert dispatcher.run_once().digests == 0
        # Turned on, then off again before its time: nothing either.
        assert rep.patch("/me", {"digest_time": "23:00"}).status_code == 200
        assert rep.patch("/me", {"digest_time": None}).status_code == 200
        clock.move_to(local(CHICAGO, 2030, 3, 5, 23, 30))
        assert dispatcher.run_once().digests == 0
    assert digests(push_service) == []


def test_no_device_no_digest_and_none_lost_when_one_is_added(app, push_service, dispatcher):
    with time_machine.travel(local(CHICAGO, 2030, 3, 5, 7, 0), tick=True) as clock:
        rep = register_rep(app, timezone=CHICAGO)
        rep.patch("/me", {"digest_time": "07:00"})
        assert dispatcher.run_once().digests == 0
        assert sent_on(app, rep.user["id"]) is None
        clock.move_to(local(CHICAGO, 2030, 3, 5, 8, 0))
        sub = subscribe(rep, push_service)  # reminders turned on an hour later
        assert dispatcher.run_once().digests == 1
    assert [p.subscriber for p in digests(push_service)] == [sub.id]


def test_every_device_gets_it_and_a_gone_one_is_deleted(app, push_service, dispatcher):
    with time_machine.travel(local(CHICAGO, 2030, 3, 5, 7, 0), tick=True):
        rep, phone = digest_rep(app, push_service)
        laptop, old = subscribe(rep, push_service), subscribe(rep, push_service)
        push_service.answer(old, 410)
        stats = dispatcher.run_once()
    assert (stats.digests, stats.gone) == (1, 1)
    assert {p.subscriber for p in digests(push_service) if p.status == 201} == {
        phone.id,
        laptop.id,
    }
    with app.extensions["sqlalchemy"].engine.connect() as conn:
        endpoints = set(conn.execute(sa.select(push_subscriptions.c.endpoint)).scalars())
    assert endpoints == {phone.endpoint, laptop.endpoint}


def test_5xx_and_429_are_retried_with_backoff_and_not_lost(app, push_service, dispatcher):
    with time_machine.travel(local(CHICAGO, 2030, 3, 5, 7, 0), tick=True) as clock:
        rep, sub = digest_rep(app, push_service)
        push_service.answer(sub, 500)
        push_service.answer(sub, 429, Retry_After="60")
        assert dispatcher.run_once().retried == 1
        assert sent_on(app, rep.user["id"]) is None
        assert dispatcher.run_once().digests == 0  # backing off: not at once
        clock.move_to(local(CHICAGO, 2030, 3, 5, 7, 0, 10))
        assert dispatcher.run_once().retried == 1  # the 429
        clock.move_to(local(CHICAGO, 2030, 3, 5, 7, 0, 50))
        assert dispatcher.run_once().digests == 0  # Retry-After: 60 holds
        clock.move_to(local(CHICAGO, 2030, 3, 5, 7, 1, 15))
        assert dispatcher.run_once().digests == 1
    assert [p.status for p in digests(push_service)] == [500, 429, 201]
    assert len({p.headers["topic"] for p in digests(push_service)}) == 1
    assert sent_on(app, rep.user["id"]) == date(2030, 3, 5)


def test_auckland_far_from_utc_and_across_its_dst_change(app, push_service, dispatcher):
    # 7:00 in Auckland is the evening before in UTC; the day counted is Auckland's.
    # 2030-04-07 03:00 NZDT (+13) the clocks go back to 02:00 NZST (+12).
    with time_machine.travel(local(AUCKLAND, 2030, 4, 6, 6, 0), tick=True) as clock:
        rep, _sub = digest_rep(app, push_service, zone=AUCKLAND)
        clock.move_to(local(AUCKLAND, 2030, 4, 6, 7, 0))
        assert datetime.now(UTC).date() == date(2030, 4, 5)
        assert dispatcher.run_once().digests == 1
        assert sent_on(app, rep.user["id"]) == date(2030, 4, 6)

        # The change day: 7:00 on the clock is an hour later in UTC than the day before.
        clock.move_to(datetime(2030, 4, 6, 18, 0, tzinfo=UTC))  # 06:00 NZST
        assert dispatcher.run_once().digests == 0
        clock.move_to(datetime(2030, 4, 6, 18, 59, 59, tzinfo=UTC))
        assert dispatcher.run_once().digests == 0
        clock.move_to(datetime(2030, 4, 6, 19, 0, tzinfo=UTC))  # 07:00 NZST
        assert dispatcher.run_once().digests == 1
        assert sent_on(app, rep.user["id"]) == date(2030, 4, 7)

        # Spring forward, 2030-09-29 02:00 NZST -> 03:00 NZDT: a 02:30 digest has no 02:30
        # that night, and goes when the clock would have read it, at 03:30.
        assert rep.patch("/me", {"digest_time": "02:30"}).status_code == 200
        clock.move_to(local(AUCKLAND, 2030, 9, 29, 1, 59))
        assert dispatcher.run_once().digests == 0
        clock.move_to(local(AUCKLAND, 2030, 9, 29, 3, 29))
        assert dispatcher.run_once().digests == 0
        clock.move_to(local(AUCKLAND, 2030, 9, 29, 3, 30))
        assert dispatcher.run_once().digests == 1
        assert sent_on(app, rep.user["id"]) == date(2030, 9, 29)
    assert len(digests(push_service)) == 3


def test_two_dispatchers_at_once_send_each_digest_once(app, push_service):
    push_service.delay = 0.01  # the two overlap for the whole pass
    with time_machine.travel(local(CHICAGO, 2030, 3, 5, 7, 0), tick=True):
        subs = seed_digest_reps(app, push_service, 40, CHICAGO, "07:00")
        pair = [Dispatcher(app, batch=10, concurrency=2) for _ in range(2)]
        start = threading.Barrier(2)
        totals = [0, 0]

        def run(i: int) -> None:
            start.wait()
            for _ in range(3):
                totals[i] += pair[i].run_once().digests

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for d in pair:
            d.close()
    got = Counter(p.subscriber for p in digests(push_service))
    assert set(got) == {s.id for s in subs}
    assert [sid for sid, n in got.items() if n > 1] == []
    assert sum(totals) == 40


def zone_at_midday() -> str:
    """A fixed-offset zone where it is now between 10:00 and 14:00 (for real-time tests)."""
    now = datetime.now(UTC)
    for hours in range(-12, 15):
        if 10 <= (now + timedelta(hours=hours)).hour < 14:
            return f"Etc/GMT{-hours:+d}" if hours else "Etc/UTC"
    raise AssertionError("unreachable")


def test_a_dispatcher_killed_mid_send_loses_nothing(app, push_service, tmp_path):
    """A real ``flask dispatch`` process, killed with SIGKILL while its digest is in flight."""
    zone = zone_at_midday()
    rep, sub = digest_rep(app, push_service, zone=zone)
    now = datetime.now(ZoneInfo(zone))
    at = f"{now - timedelta(minutes=1):%H:%M}"
    assert rep.patch("/me", {"digest_time": at}).status_code == 200
    push_service.delay = 30.0  # the push service sits on the request: the kill lands mid-send
    env = {
        **os.environ,
        "TOUCHBASE_DATABASE_URL": app.config["DATABASE_URL"],
        "TOUCHBASE_PUSH_ORIGINS": push_service.origin,
    }
    command = [sys.executable, "-m", "flask", "--app", "webapp", "dispatch", "--interval", "1"]
    victim = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while sub.id not in push_service.arrivals and time.time() < deadline:
            time.sleep(0.02)
        assert sub.id in push_service.arrivals, "the dispatcher never sent the digest"
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    assert sent_on(app, rep.user["id"]) is None  # nothing was recorded as sent

    push_service.delay = 0
    survivor = Dispatcher(app, concurrency=1)
    sent = 0
    deadline = time.time() + 10
    while not sent and time.time() < deadline:  # PostgreSQL notices the dead client at once
        sent = survivor.run_once().digests
        time.sleep(0.05)
    survivor.close()
    assert sent == 1
    assert sent_on(app, rep.user["id"]) == now.date()
    mine = [p for p in push_service.received(sub) if p.payload.get("kind") == "digest"]
    # The survivor's push; the killed one's may also arrive (the service still answers it
    # after its delay), with the same Topic, so it replaces rather than adds.
    assert mine and {p.headers["topic"] for p in mine} == {"touchbase-digest"}


def test_the_lease_blocks_none_of_the_reps_calls(app, push_service):
    """While a digest is in flight (its rep row locked, on PostgreSQL), the rep logs a call:
    the foreign key check on that row must not wait for the push service."""
    zone = zone_at_midday()
    rep, sub = digest_rep(app, push_service, zone=zone)
    client = rep.add_client("Ada Lovelace")
    at = f"{datetime.now(ZoneInfo(zone)) - timedelta(minutes=1):%H:%M}"
    assert rep.patch("/me", {"digest_time": at}).status_code == 200
    push_service.delay = 3.0
    dispatcher = Dispatcher(app, concurrency=1)
    loop = threading.Thread(target=dispatcher.send_summaries)
    loop.start()
    try:
        deadline = time.time() + 10
        while sub.id not in push_service.arrivals and time.time() < deadline:
            time.sleep(0.01)
        assert sub.id in push_service.arrivals
        assert rep.touch(client["id"], "reached").status_code == 201
        assert push_service.received(sub) == []  # the digest was still in flight
    finally:
        loop.join()
        dispatcher.close()
    assert len(digests(push_service, sub)) == 1


def weeklies(service: FakePushService) -> list[Push]:
    return [p for p in service.received() if p.payload.get("kind") == "weekly"]


def test_the_weekly_summary_goes_out_on_monday_once(app, push_service, dispatcher):
    # 2030-03-04 and 2030-03-11 are Mondays; Chicago springs forward on Sunday 2030-03-10.
    with time_machine.travel(local(CHICAGO, 2030, 2, 25, 9, 0), tick=True) as clock:
        rep, sub = digest_rep(app, push_service, at=None)
        assert rep.patch("/me", {"weekly_push": True}).json["weekly_push"] is True
        ada, bob = rep.add_client("Ada Lovelace"), rep.add_client("Bob Builder")
        # Last week: three calls, two reached.
        for day, client, outcome in (
            (26, ada, "reached"),
            (27, bob, "no_answer"),
            (28, bob, "reached"),
        ):
            clock.move_to(local(CHICAGO, 2030, 2, day, 11, 0))
            assert rep.touch(client["id"], outcome).status_code == 201

        for when in (local(CHICAGO, 2030, 3, 3, 9, 0), local(CHICAGO, 2030, 3, 4, 8, 59)):
            clock.move_to(when)  # Sunday; Monday before the call time (09:00)
            assert dispatcher.run_once().weekly == 0
        clock.move_to(local(CHICAGO, 2030, 3, 4, 9, 0))
        stats = dispatcher.run_once()
        assert (stats.weekly, stats.digests) == (1, 0)
        (push,) = weeklies(push_service)
        assert push.subscriber == sub.id
        assert push.payload["title"] == "Last week: 3 calls, 2 reached"
        assert push.payload["body"].startswith("Reach rate 67%. No promises fell due.")
        assert (push.payload["url"], push.payload["tag"]) == ("/#/stats", "touchbase-weekly")
        assert push.headers["topic"] == "touchbase-weekly"
        assert push.headers["urgency"] == "normal"
        assert sent_on(app, rep.user["id"], "weekly_sent_on") == date(2030, 3, 4)

        # Once a week: not later that Monday, not from another dispatcher, not on Tuesday.
        clock.move_to(local(CHICAGO, 2030, 3, 4, 10, 0))
        assert dispatcher.run_once().weekly == 0
        other = Dispatcher(app, concurrency=1)
        assert other.run_once().weekly == 0
        other.close()
        clock.move_to(local(CHICAGO, 2030, 3, 5, 9, 0))
        assert dispatcher.run_once().weekly == 0

        # The next Monday, after the clocks changed: 09:00 on the clock again.
        clock.move_to(local(CHICAGO, 2030, 3, 11, 8, 59))
        assert dispatcher.run_once().weekly == 0
        clock.move_to(local(CHICAGO, 2030, 3, 11, 9, 0))
        assert dispatcher.run_once().weekly == 1
        assert weeklies(push_service)[-1].payload["title"] == "Last week: 0 calls, 0 reached"
        assert sent_on(app, rep.user["id"], "weekly_sent_on") == date(2030, 3, 11)
    assert len(weeklies(push_service)) == 2
    assert digests(push_service) == []


def test_the_weekly_summary_comes_with_the_digest_and_stays_off_unless_asked(
    app, push_service, dispatcher
):
    with time_machine.travel(local(AUCKLAND, 2030, 3, 4, 6, 0), tick=True) as clock:
        asked, asked_sub = digest_rep(app, push_service, zone=AUCKLAND, at="06:30")
        assert asked.patch("/me", {"weekly_push": True}).status_code == 200
        _not, not_sub = digest_rep(
            app, push_service, zone=AUCKLAND, at="06:30", email="no@example.com"
        )
        clock.move_to(local(AUCKLAND, 2030, 3, 4, 6, 30))  # Monday in Auckland, Sunday in UTC
        assert datetime.now(UTC).weekday() == 6
        stats = dispatcher.run_once()
        assert (stats.digests, stats.weekly) == (2, 1)
    got = sorted((p.subscriber, p.payload["kind"]) for p in push_service.received())
    assert got == sorted(
        [(asked_sub.id, "digest"), (asked_sub.id, "weekly"), (not_sub.id, "digest")]
    )
    assert sent_on(app, asked.user["id"], "weekly_sent_on") == date(2030, 3, 4)
