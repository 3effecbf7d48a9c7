"""The dispatcher against the fake push service: what is sent, once, and what each answer does."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from zoneinfo import ZoneInfo

import time_machine

from tests.push.conftest import callback_row, no_quiet_hours, promise, subscribe
from webapp.dispatch import NO_DEVICE, Dispatcher, _Results
from webapp.models import utcnow
from webapp.services.push import TIMEOUT, Sender


def _open(rep, callback_id):
    (item,) = [c for c in rep.get("/callbacks").json["items"] if c["id"] == callback_id]
    return item


def test_a_due_callback_is_pushed_once_with_what_was_promised(app, rep, push_service, dispatcher):
    no_quiet_hours(rep)
    sub = subscribe(rep, push_service)
    due = utcnow() - timedelta(seconds=5)
    made = promise(app, rep, "Ada Lovelace", due)
    later = promise(app, rep, "Not Yet", utcnow() + timedelta(hours=1))

    stats = dispatcher.run_once()
    assert (stats.claimed, stats.notified) == (1, 1)
    (push,) = push_service.received()
    assert push.subscriber == sub.id
    local = due.astimezone(ZoneInfo("America/Chicago"))
    assert push.payload == {
        "title": "Call Ada Lovelace",
        "body": f"You said you'd call back {local:%A} {local.hour}:{local.minute:02d}",
        "url": f"/#/clients/{made['client_id']}",
        "callback_id": made["callback_id"],
        "client_id": made["client_id"],
        "tag": f"callback-{made['callback_id']}",
    }
    assert int(push.headers["ttl"]) >= 3600
    assert push.headers["urgency"] == "high"
    assert len(push.headers["topic"]) == 22
    assert push.claims["aud"] == push_service.origin
    assert push.claims["sub"] == app.config["VAPID_SUBJECT"]

    # The rep sees it was notified; the one not yet due was not.
    assert _open(rep, made["callback_id"])["notified_at"] is not None
    assert _open(rep, later["callback_id"])["notified_at"] is None
    # Another pass, or another dispatcher, sends nothing more.
    assert dispatcher.run_once().claimed == 0
    other = Dispatcher(app, concurrency=1)
    assert other.run_once().claimed == 0
    other.close()
    assert len(push_service.received()) == 1


def test_every_device_of_the_rep_and_no_one_elses(app, rep, other_rep, push_service, dispatcher):
    no_quiet_hours(rep)
    phone, laptop = subscribe(rep, push_service), subscribe(rep, push_service)
    stranger = subscribe(other_rep, push_service)
    made = promise(app, rep)
    dispatcher.run_once()
    got = {p.subscriber for p in push_service.received()}
    assert got == {phone.id, laptop.id}
    assert stranger.id not in got
    assert {p.payload["callback_id"] for p in push_service.received()} == {made["callback_id"]}


def test_a_snooze_notifies_again(app, rep, push_service, dispatcher):
    no_quiet_hours(rep)
    subscribe(rep, push_service)
    made = promise(app, rep)
    dispatcher.run_once()
    assert len(push_service.received()) == 1
    until = utcnow() + timedelta(minutes=10)
    resp = rep.post(f"/callbacks/{made['callback_id']}/snooze", {"until": until.isoformat()})
    assert resp.status_code == 200 and resp.json["notified_at"] is None
    assert dispatcher.run_once().claimed == 0  # not due yet
    with time_machine.travel(until + timedelta(seconds=1), tick=True):
        assert dispatcher.run_once().notified == 1
    assert [p.payload["callback_id"] for p in push_service.received()] == [made["callback_id"]] * 2


def test_quiet_hours_defer_to_their_end(app, rep, push_service, dispatcher):
    subscribe(rep, push_service)
    zone = ZoneInfo("America/Chicago")
    local = utcnow().astimezone(zone)
    start, end = local - timedelta(hours=1), local + timedelta(hours=1)
    quiet = {"start": f"{start:%H:%M}", "end": f"{end:%H:%M}"}
    assert rep.patch("/me", {"quiet_hours": quiet}).status_code == 200
    made = promise(app, rep)

    stats = dispatcher.run_once()
    assert (stats.deferred, stats.notified) == (1, 0)
    assert push_service.received() == []
    held = callback_row(app, made["callback_id"]).claimed_until
    expected = end.replace(second=0, microsecond=0)
    assert abs((held - expected).total_seconds()) < 1
    # Not claimed again while quiet, however often the dispatcher runs.
    assert dispatcher.run_once().claimed == 0
    with time_machine.travel(expected + timedelta(seconds=1), tick=True):
        assert dispatcher.run_once().notified == 1
    assert len(push_service.received()) == 1


def test_410_and_404_delete_that_device_only(app, rep, push_service, dispatcher):
    no_quiet_hours(rep)
    gone, missing, kept = (subscribe(rep, push_service) for _ in range(3))
    push_service.answer(gone, 410)
    push_service.answer(missing, 404)
    made = promise(app, rep)
    stats = dispatcher.run_once()
    assert (stats.notified, stats.gone) == (1, 2)
    assert callback_row(app, made["callback_id"]).notified_at is not None
    rep2 = rep.post("/push/test")
    assert rep2.json == {"devices": 1}  # only the device that still exists
    dispatcher.run_once()
    assert [p.subscriber for p in push_service.received()][-1] == kept.id


def test_the_last_device_gone_leaves_the_error_visible(app, rep, push_service, dispatcher):
    no_quiet_hours(rep)
    only = subscribe(rep, push_service)
    push_service.answer(only, 410)
    made = promise(app, rep)
    assert dispatcher.run_once().no_device == 1
    item = _open(rep, made["callback_id"])
    assert item["notified_at"] is None and item["last_error"] == NO_DEVICE
    assert rep.post("/push/test").json == {"devices": 0}


def test_without_devices_a_callback_is_not_claimed_again(app, rep, dispatcher):
    no_quiet_hours(rep)
    made = promise(app, rep)
    assert dispatcher.run_once().no_device == 1
    assert dispatcher.run_once().claimed == 0
    assert _open(rep, made["callback_id"])["last_error"] == NO_DEVICE


def test_5xx_is_retried_soon_and_not_lost(app, rep, push_service, dispatcher):
    no_quiet_hours(rep)
    sub = subscribe(rep, push_service)
    push_service.answer(sub, 500, 503)
    made = promise(app, rep)
    start = utcnow()
    assert dispatcher.run_once().retried == 1
    row = callback_row(app, made["callback_id"])
    assert row.notified_at is None and row.send_attempts == 1 and row.last_error is None
    # The first retry comes within about 10 seconds; not at once.
    assert start < row.claimed_until <= start + timedelta(seconds=10)
    assert dispatcher.run_once().claimed == 0
    with time_machine.travel(row.claimed_until + timedelta(seconds=1), tick=True):
        assert dispatcher.run_once().retried == 1
        second = callback_row(app, made["callback_id"])
    assert second.claimed_until - row.claimed_until > timedelta(seconds=5)  # backing off
    with time_machine.travel(second.claimed_until + timedelta(seconds=1), tick=True):
        assert dispatcher.run_once().notified == 1
    assert [p.status for p in push_service.received()] == [500, 503, 201]


def test_429_honours_retry_after_for_the_whole_origin(app, rep, push_service, dispatcher):
    no_quiet_hours(rep)
    sub = subscribe(rep, push_service)
    push_service.answer(sub, 429, Retry_After="120")
    first = promise(app, rep, "First")
    second = promise(app, rep, "Second")
    start = utcnow()
    stats = dispatcher.run_once()
    assert (stats.claimed, stats.retried, stats.pushes) == (2, 2, 2)
    # One request reached the service; the other was held back without asking it again.
    assert [p.status for p in push_service.received()] == [429]
    for made in (first, second):
        held = callback_row(app, made["callback_id"]).claimed_until
        assert held >= start + timedelta(seconds=119)
    with time_machine.travel(start + timedelta(seconds=122), tick=True):
        assert dispatcher.run_once().notified == 2
    assert [p.status for p in push_service.received()] == [429, 201, 201]


def test_a_timeout_is_retried(app, rep, push_service):
    no_quiet_hours(rep)
    subscribe(rep, push_service)
    made = promise(app, rep)
    sender = Sender(
        app.config["VAPID_PRIVATE_KEY"],
        app.config["VAPID_SUBJECT"],
        app.extensions["touchbase_push"]["origins"],
        timeout=(1.0, 0.2),
    )
    dispatcher = Dispatcher(app, concurrency=1, sender=sender)
    push_service.delay = 0.6
    stats = dispatcher.run_once()
    assert stats.retried == 1
    row = callback_row(app, made["callback_id"])
    assert row.notified_at is None and row.send_attempts == 1
    push_service.delay = 0
    with time_machine.travel(row.claimed_until + timedelta(seconds=1), tick=True):
        assert dispatcher.run_once().notified == 1
    dispatcher.close()
    assert TIMEOUT[1] > 0.2  # the production timeout is the generous one


def test_a_configuration_error_is_loud_and_keeps_the_device(
    app, rep, push_service, dispatcher, caplog
):
    no_quiet_hours(rep)
    sub = subscribe(rep, push_service)
    push_service.answer(sub, 403)
    made = promise(app, rep)
    with caplog.at_level(logging.ERROR, logger="webapp.dispatch"):
        assert dispatcher.run_once().retried == 1
    assert any("PUSH CONFIGURATION ERROR" in r.message for r in caplog.records)
    row = callback_row(app, made["callback_id"])
    assert row.notified_at is None and row.send_attempts == 1
    assert rep.post("/push/test").json == {"devices": 1}  # the device is still there


def test_after_n_failures_the_error_is_recorded_and_retries_stop(app, rep, push_service):
    no_quiet_hours(rep)
    sub = subscribe(rep, push_service)
    push_service.answer(sub, 500, 500, 500, 500)
    made = promise(app, rep)
    dispatcher = Dispatcher(app, concurrency=1, max_attempts=3)
    for _ in range(3):
        row = callback_row(app, made["callback_id"])
        when = max(row.claimed_until or utcnow(), utcnow()) + timedelta(seconds=1)
        with time_machine.travel(when, tick=True):
            dispatcher.run_once()
    item = _open(rep, made["callback_id"])
    assert item["notified_at"] is None
    assert item["last_error"].startswith("Not delivered after 3 attempts: 500")
    with time_machine.travel(utcnow() + timedelta(days=1), tick=True):
        assert dispatcher.run_once().claimed == 0
    dispatcher.close()
    assert len(push_service.received()) == 3
    # A snooze gives it a fresh start.
    until = utcnow() - timedelta(seconds=1)
    assert (
        rep.post(f"/callbacks/{made['callback_id']}/snooze", {"until": until.isoformat()}).json[
            "last_error"
        ]
        is None
    )


def test_a_snooze_during_the_send_wins(app, rep, push_service, dispatcher):
    no_quiet_hours(rep)
    subscribe(rep, push_service)
    made = promise(app, rep)
    token, rows, _subs = dispatcher.claim(utcnow())
    assert [r.id for r in rows] == [made["callback_id"]]
    until = utcnow() + timedelta(hours=2)
    rep.post(f"/callbacks/{made['callback_id']}/snooze", {"until": until.isoformat()})
    # The old lease's result lands after the snooze: it must not mark the new time notified.
    dispatcher._record(token, [made["callback_id"]], [], [], [], _Results())
    row = callback_row(app, made["callback_id"])
    assert row.notified_at is None and row.claim_token is None
    assert abs((row.due_at - until).total_seconds()) < 0.001


def test_a_callback_due_at_t_is_pushed_by_t_plus_two_intervals(app, rep, push_service):
    no_quiet_hours(rep)
    subscribe(rep, push_service)
    interval = 1.0
    dispatcher = Dispatcher(app, concurrency=1)
    loop = threading.Thread(target=dispatcher.run_forever, args=(interval,), daemon=True)
    loop.start()
    try:
        time.sleep(0.3)  # the loop is idle, sleeping its full interval
        due = utcnow() + timedelta(seconds=1.5)
        promise(app, rep, "Soon", due)
        deadline = time.time() + 10 * interval
        while not push_service.received() and time.time() < deadline:
            time.sleep(0.05)
    finally:
        dispatcher.stop.set()
        loop.join()
        dispatcher.close()
    (push,) = push_service.received()
    assert due.timestamp() <= push.at <= due.timestamp() + 2 * interval


def test_the_dispatch_command_once(app, rep, push_service):
    no_quiet_hours(rep)
    subscribe(rep, push_service)
    promise(app, rep)
    result = app.test_cli_runner().invoke(args=["dispatch", "--once", "--concurrency", "1"])
    assert result.exit_code == 0, result.output
    assert "claimed 1, notified 1" in result.output
    assert len(push_service.received()) == 1
