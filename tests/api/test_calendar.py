"""The private calendar feed: a hashed token, an iCalendar document, and rotation."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import icalendar
import sqlalchemy as sa


def feed_path(url: str) -> str:
    parts = urlsplit(url)
    assert parts.scheme in ("http", "https") and parts.netloc  # an absolute URL
    return parts.path


def test_first_get_makes_the_url_and_only_its_hash_is_stored(app, rep):
    resp = rep.get("/calendar")
    assert resp.status_code == 200 and resp.json["created"] is True
    url = resp.json["url"]
    token = feed_path(url).removeprefix("/cal/").removesuffix(".ics")
    assert len(token) >= 43
    with app.extensions["sqlalchemy"].engine.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT calendar_token_hash FROM users WHERE id = :u"), {"u": rep.user["id"]}
        ).scalar()
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    # The token itself is nowhere in the database: it needs the app's secret key too.
    with app.extensions["sqlalchemy"].engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM users WHERE id = :u"), {"u": rep.user["id"]})
        assert token not in str(row.one())
    # The same link on every visit, until a rotate.
    later = rep.get("/calendar").json
    assert later["url"] == url and later["created"] is False and later["created_at"]


def test_feed_has_one_event_per_open_callback(app, rep):
    ada = rep.add_client("Ada Byrne", phone="312 555 0101")
    ben = rep.add_client("Ben Osei")
    gone = rep.add_client("Gone Client")
    assert rep.touch(ada["id"], "reached", note="Wants the spring prices").status_code == 201
    promise = rep.touch(ada["id"], "left_message", callback_at="2030-05-06T15:00:00+00:00")
    rep.touch(ben["id"], "no_answer", callback_at="2030-05-07T14:30:00+00:00")
    rep.touch(gone["id"], "no_answer", callback_at="2030-05-08T14:30:00+00:00")
    assert rep.delete(f"/clients/{gone['id']}").status_code == 204
    path = feed_path(rep.get("/calendar").json["url"])

    resp = app.test_client().get(path)  # no cookie
    assert resp.status_code == 200
    assert resp.mimetype == "text/calendar"
    cal = icalendar.Calendar.from_ical(resp.get_data())
    assert cal["VERSION"] == "2.0" and cal["PRODID"]
    events = cal.walk("VEVENT")
    assert [str(e["SUMMARY"]) for e in events] == ["Call Ada Byrne", "Call Ben Osei"]
    first = events[0]
    assert first.decoded("DTSTART") == datetime(2030, 5, 6, 15, 0, tzinfo=UTC)
    assert first.decoded("DTEND") - first.decoded("DTSTART") == timedelta(minutes=15)
    assert "+13125550101" in str(first["DESCRIPTION"])
    assert "Wants the spring prices" in str(first["DESCRIPTION"])
    assert str(first["URL"]).endswith(f"/#/clients/{ada['id']}")
    assert str(first["URL"]).startswith("http://localhost")
    assert str(first["UID"]) == f"callback-{promise.json['callback_id']}@touchbase"
    assert first.get("DTSTAMP") is not None
    # Stable: the same feed twice is the same document, so calendars update events in place.
    assert app.test_client().get(path).get_data() == resp.get_data()


def test_rotate_makes_the_old_url_404(app, rep):
    old = feed_path(rep.get("/calendar").json["url"])
    assert app.test_client().get(old).status_code == 200
    rotated = rep.post("/calendar/rotate")
    assert rotated.status_code == 200 and rotated.json["created"] is True
    new = feed_path(rotated.json["url"])
    assert new != old
    gone = app.test_client().get(old)
    assert gone.status_code == 404 and gone.json["error"]["code"] == "not_found"
    assert app.test_client().get(new).status_code == 200


def test_unknown_tokens_are_404(app):
    client = app.test_client()
    for path in ("/cal/nope.ics", "/cal/" + "x" * 43 + ".ics", "/cal/" + "y" * 500 + ".ics"):
        assert client.get(path).status_code == 404


def test_feeds_are_per_rep(app, rep, other_rep):
    client = rep.add_client("Zelda Secretname")
    rep.touch(client["id"], "no_answer", callback_at="2030-05-06T15:00:00+00:00")
    b_feed = app.test_client().get(feed_path(other_rep.get("/calendar").json["url"]))
    assert b_feed.status_code == 200
    assert icalendar.Calendar.from_ical(b_feed.get_data()).walk("VEVENT") == []
    assert "Secretname" not in b_feed.get_data(as_text=True)


def test_needs_login(app):
    client = app.test_client()
    assert client.get("/api/v1/calendar").status_code == 401
    token = client.get("/api/v1/csrf").json["csrf_token"]
    resp = client.post("/api/v1/calendar/rotate", headers={"X-CSRFToken": token})
    assert resp.status_code == 401


def test_feed_is_rfc_5545_text(app, rep):
    """What strict calendar apps read: CRLF lines of at most 75 octets (longer ones folded),
    text escaped, UTC times, and the properties RFC 5545 requires of a calendar and an event."""
    name = "Zoë; Lefèvre, Café Crème \\ Co"
    note = "Wants the spring prices; call before 10, not after.\nSecond line. " + "é" * 80
    client = rep.add_client(name, phone="312 555 0101")
    rep.touch(client["id"], "reached", note=note)
    rep.touch(client["id"], "left_message", callback_at="2030-05-06T15:00:00+00:00")
    body = app.test_client().get(feed_path(rep.get("/calendar").json["url"])).get_data()

    assert body.endswith(b"\r\n")
    lines = body.split(b"\r\n")[:-1]
    assert all(len(line) <= 75 for line in lines), max(lines, key=len)
    assert not any(b"\n" in line or b"\r" in line for line in lines)
    assert lines[0] == b"BEGIN:VCALENDAR" and lines[-1] == b"END:VCALENDAR"
    unfolded = body.replace(b"\r\n ", b"").decode("utf-8").split("\r\n")
    props = {line.split(":", 1)[0].split(";", 1)[0] for line in unfolded if line}
    assert {"VERSION", "PRODID", "UID", "DTSTAMP", "DTSTART", "DTEND", "SUMMARY"} <= props
    assert "DTSTART:20300506T150000Z" in unfolded
    assert all(line.endswith("Z") for line in unfolded if line.startswith("DTSTAMP:"))
    assert r"SUMMARY:Call Zoë\; Lefèvre\, Café Crème \\ Co" in unfolded
    # Parsed back, the text is exactly what the rep wrote.
    (event,) = icalendar.Calendar.from_ical(body).walk("VEVENT")
    assert str(event["SUMMARY"]) == f"Call {name}"
    assert str(event["DESCRIPTION"]) == f"+13125550101\nLast note: {note}"
