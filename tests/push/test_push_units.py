"""The pure parts of push: the allow-list, quiet hours, backoff, Topic, Retry-After, VAPID cache."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine

from tests.push.fake_service import FakePushService, unb64url
from webapp.dispatch import (
    SUMMARY_GRACE,
    _monday_somewhere,
    backoff,
    digest_payload,
    quiet_until,
    summary_window,
    weekly_payload,
)
from webapp.services.push import (
    VAPID_RENEW_BEFORE,
    VAPID_VALIDITY,
    Sender,
    allowed,
    classify,
    parse_origins,
    parse_retry_after,
    topic,
)

PEM = """-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQggQoYI1r7qBhXejHA
bmn04wfDDjPseZEynw2tCtGaSQqhRANCAASGLSgFPHtCYSkUWpGFOispNxYGCeHK
a+Ywb5m6KDJ9YQxwMatyJkveAYaxRS834Uig+zKOI0jLhWifpCRN1QNv
-----END PRIVATE KEY-----
"""


def test_default_origins_and_wildcards():
    origins = parse_origins(None)
    assert allowed("https://fcm.googleapis.com/fcm/send/x", origins)
    assert allowed("https://db5p.notify.windows.com/w/?token=1", origins)
    assert allowed("https://a.b.notify.windows.com/w/", origins)
    assert not allowed("https://notify.windows.com/w/", origins)
    assert not allowed("https://x.notify.windows.com:444/w/", origins)
    assert not allowed("https://bad_label.notify.windows.com/w/", origins)
    assert not allowed("https://-x.notify.windows.com/w/", origins)
    assert not allowed("https://x.notify.windows.com.evil.example/w/", origins)
    assert not allowed("https://user@fcm.googleapis.com/x", origins)
    assert not allowed("https://fcm.googleapis.com:99999/x", origins)
    assert not allowed("http://fcm.googleapis.com/x", origins)


def test_http_only_where_listed():
    origins = parse_origins("http://127.0.0.1:8123, https://push.example.com")
    assert allowed("http://127.0.0.1:8123/push/1", origins)
    assert not allowed("http://127.0.0.1:8124/push/1", origins)
    assert not allowed("https://127.0.0.1:8123/push/1", origins)
    assert allowed("https://push.example.com:443/x", origins)
    assert not allowed("http://push.example.com/x", origins)


@pytest.mark.parametrize("bad", ["fcm.googleapis.com", "https://a.*.example", "https://x.com/path"])
def test_a_bad_allow_list_stops_the_start(bad):
    with pytest.raises(RuntimeError):
        parse_origins(bad)


def _utc(zone: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def test_quiet_hours_across_midnight():
    zone = "America/Chicago"
    late = _utc(zone, 2030, 3, 5, 22, 30)
    assert quiet_until(late, zone, "21:00", "08:00") == _utc(zone, 2030, 3, 6, 8, 0)
    early = _utc(zone, 2030, 3, 6, 6, 0)
    assert quiet_until(early, zone, "21:00", "08:00") == _utc(zone, 2030, 3, 6, 8, 0)
    assert quiet_until(_utc(zone, 2030, 3, 6, 8, 0), zone, "21:00", "08:00") is None
    assert quiet_until(_utc(zone, 2030, 3, 6, 20, 59), zone, "21:00", "08:00") is None
    # A window inside one day, and quiet hours turned off.
    assert quiet_until(_utc(zone, 2030, 3, 6, 13, 0), zone, "12:00", "14:00") == _utc(
        zone, 2030, 3, 6, 14, 0
    )
    assert quiet_until(late, zone, None, None) is None


def test_quiet_hours_end_on_the_local_clock_across_dst():
    # Auckland leaves daylight saving on 2030-04-07 at 03:00 (NZDT +13 -> NZST +12).
    zone = "Pacific/Auckland"
    night = _utc(zone, 2030, 4, 6, 23, 0)
    end = quiet_until(night, zone, "21:00", "08:00")
    assert end == _utc(zone, 2030, 4, 7, 8, 0)
    assert end - night == timedelta(hours=10)  # nine on the clock, ten in fact


def test_backoff_starts_within_ten_seconds_and_grows():
    waits = [backoff(n) for n in range(1, 9)]
    assert waits[0] <= 10
    assert all(b > a for a, b in itertools.pairwise(waits) if b < 3600)
    assert max(waits) <= 3600


def test_topic_is_short_base64url_and_stable():
    cid = "0b6c1f9e-53a4-4f73-9a43-0c4d9e2f1a77"
    assert topic(cid) == topic(cid) and len(topic(cid)) == 22
    assert set(topic(cid)) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )


def test_retry_after_in_seconds_or_as_a_date():
    assert parse_retry_after("120") == 120
    now = 1_900_000_000.0
    later = format_datetime(datetime.fromtimestamp(now + 90, UTC), usegmt=True)
    assert parse_retry_after(later, now) == pytest.approx(90)
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    assert classify(429, "30").retry_after == 30


def test_classify_follows_the_table():
    assert classify(201).kind == "sent"
    assert classify(404).kind == classify(410).kind == "gone"
    assert classify(429).kind == classify(500).kind == classify(503).kind == "retry"
    assert classify(400).kind == classify(401).kind == classify(403).kind == "config"


def _claims(headers: dict[str, str]) -> dict:
    token = headers["Authorization"].split("t=")[1].split(",")[0]
    return json.loads(unb64url(token.split(".")[1]))


def test_vapid_token_is_cached_per_origin_and_renewed_near_expiry():
    sender = Sender(PEM, "mailto:ops@example.com", parse_origins(None))
    fcm, moz = "https://fcm.googleapis.com", "https://updates.push.services.mozilla.com"
    first = sender.vapid_headers(fcm)
    assert sender.vapid_headers(fcm) is first  # no signing per push
    other = sender.vapid_headers(moz)
    # Each origin gets its own aud: claims are a fresh dict each time, never a shared one.
    assert _claims(first)["aud"] == fcm and _claims(other)["aud"] == moz
    assert _claims(first)["exp"] - datetime.now(UTC).timestamp() <= 24 * 3600
    almost = VAPID_VALIDITY - VAPID_RENEW_BEFORE + 60
    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=almost)):
        renewed = sender.vapid_headers(fcm)
    assert renewed is not first and _claims(renewed)["exp"] > _claims(first)["exp"]
    sender.close()


def test_the_fake_service_refuses_a_bad_token():
    with FakePushService(None) as service:
        with pytest.raises(ValueError):
            service.check_vapid("vapid t=a.b.c,k=AAAA")
        with pytest.raises(ValueError):
            service.check_vapid("WebPush abc")


def test_summary_window_from_the_time_for_three_hours_once_a_day():
    zone = "America/Chicago"
    tz = ZoneInfo(zone)
    day = datetime(2030, 3, 5).date()
    assert summary_window(_utc(zone, 2030, 3, 5, 6, 59), tz, "07:00", None) is None
    opened = summary_window(_utc(zone, 2030, 3, 5, 7, 0), tz, "07:00", None)
    assert opened == (day, _utc(zone, 2030, 3, 5, 7, 0) + SUMMARY_GRACE)
    assert summary_window(_utc(zone, 2030, 3, 5, 9, 59), tz, "07:00", None) == opened
    assert summary_window(_utc(zone, 2030, 3, 5, 10, 0), tz, "07:00", None) is None
    # Sent today (or, after a change of zone, "tomorrow"): not again; sent yesterday: due.
    assert summary_window(_utc(zone, 2030, 3, 5, 7, 0), tz, "07:00", day) is None
    later = day + timedelta(days=1)
    assert summary_window(_utc(zone, 2030, 3, 5, 7, 0), tz, "07:00", later) is None
    earlier = day - timedelta(days=1)
    assert summary_window(_utc(zone, 2030, 3, 5, 7, 0), tz, "07:00", earlier) == opened
    # Late in the evening the window stops at midnight: the next day's list is another one.
    assert summary_window(_utc(zone, 2030, 3, 5, 23, 0), tz, "22:30", None) == (
        day,
        _utc(zone, 2030, 3, 6, 0, 0),
    )
    assert summary_window(_utc(zone, 2030, 3, 6, 0, 30), tz, "22:30", None) is None
    # Only on the weekday asked for (2030-03-04 is a Monday).
    assert summary_window(_utc(zone, 2030, 3, 5, 7, 0), tz, "07:00", None, weekday=0) is None
    assert summary_window(_utc(zone, 2030, 3, 4, 7, 0), tz, "07:00", None, weekday=0)
    assert summary_window(_utc(zone, 2030, 3, 5, 7, 0), tz, "7:00", None) is None


def test_summary_window_on_dst_days():
    # Chicago springs forward on 2030-03-10 at 02:00; falls back on 2030-11-03 at 02:00.
    zone = "America/Chicago"
    tz = ZoneInfo(zone)
    assert summary_window(_utc(zone, 2030, 3, 10, 3, 29), tz, "02:30", None) is None
    start = summary_window(_utc(zone, 2030, 3, 10, 3, 30), tz, "02:30", None)
    assert start is not None
    assert summary_window(_utc(zone, 2030, 3, 10, 7, 0), tz, "07:00", None) is not None
    assert summary_window(_utc(zone, 2030, 3, 10, 6, 59), tz, "07:00", None) is None
    # 01:30 happens twice on 2030-11-03: the first one counts.
    first = datetime(2030, 11, 3, 1, 30, tzinfo=ZoneInfo(zone)).astimezone(UTC)  # CDT
    assert summary_window(first, tz, "01:30", None) is not None
    assert summary_window(first - timedelta(minutes=1), tz, "01:30", None) is None


def test_monday_somewhere():
    # 2030-03-04 is a Monday. Kiribati (UTC+14) reaches it on Sunday at 10:00 UTC; Baker Island
    # (UTC-12) leaves it on Tuesday at 12:00 UTC.
    assert not _monday_somewhere(datetime(2030, 3, 3, 9, 59, tzinfo=UTC))
    assert _monday_somewhere(datetime(2030, 3, 3, 10, 0, tzinfo=UTC))
    assert _monday_somewhere(datetime(2030, 3, 5, 11, 59, tzinfo=UTC))
    assert not _monday_somewhere(datetime(2030, 3, 5, 12, 0, tzinfo=UTC))


def test_digest_text():
    assert digest_payload(6, 2, ["Ada", "Bob", "Cy", "Dee", "Eve", "Fay"])["title"] == (
        "6 calls today, 2 promised"
    )
    assert digest_payload(6, 2, ["Ada", "Bob", "Cy", "Dee", "Eve", "Fay"])["body"] == (
        "Ada, Bob, Cy and 3 more."
    )
    one = digest_payload(1, 0, ["Ada"])
    assert (one["title"], one["body"]) == ("1 call today, none promised", "Ada.")
    empty = digest_payload(0, 0, [])
    assert empty["title"] == "Nothing due today"
    for payload in (one, empty):
        assert payload["tag"] == "touchbase-digest" and payload["url"] == "/#/today"
        assert payload["callback_id"] is None and payload["client_id"] is None


def test_weekly_text():
    figures = {
        "start": "2030-02-25",
        "end": "2030-03-03",
        "calls": 42,
        "reached": 20,
        "reach_rate": 0.476,
        "promises_due": 9,
        "promises_kept": 8,
        "promises_share": 0.889,
        "coverage": {"A": 0.775, "B": None, "C": 0.5},
    }
    payload = weekly_payload(figures)
    assert payload["title"] == "Last week: 42 calls, 20 reached"
    assert payload["body"] == "Reach rate 48%. Promises kept: 8 of 9. On rhythm: A 78%, C 50%."
    assert payload["tag"] == "touchbase-weekly"
    quiet = weekly_payload(
        {
            **figures,
            "calls": 0,
            "reached": 0,
            "reach_rate": None,
            "promises_due": 0,
            "promises_kept": 0,
            "promises_share": None,
            "coverage": {"A": None, "B": None, "C": None},
        }
    )
    assert quiet["title"] == "Last week: 0 calls, 0 reached"
    assert quiet["body"] == "No promises fell due."
