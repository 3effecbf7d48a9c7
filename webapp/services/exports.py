"""The rep's data going out: CSV files for spreadsheets, the whole account as JSON, and the
calendar feed of promises.

CSV: UTF-8 with a byte order mark, because Excel reads a CSV without one in the machine's legacy
code page and garbles every accent. Rows are produced as a stream, a batch at a time.

Spreadsheet formulas: a cell that starts with ``= + - @``, a tab or a carriage return is run as a
formula by Excel and LibreOffice (CSV injection: a client named ``=HYPERLINK(...)``). Such cells,
and cells that start with an apostrophe, get one more apostrophe in front, which spreadsheets
show as text. The importer takes exactly that apostrophe off again (imports.FORMULA_STARTS), so
an exported ``clients.csv`` re-imports unchanged. The cost: phone numbers in E.164 (``+1312…``)
also get the apostrophe, which also stops Excel from turning them into ``1.31E+10``.

Account (``account.json``): everything the server holds about the rep, as one JSON document
with a format name and version: the profile and settings, every client (archived ones too),
every call, every promise, the push subscriptions (the endpoint and when it was added, not the
keys) and the sessions (when each began and was last used, not their ids). Secrets that would
open something are left out: the password hash, session ids, push keys, the calendar token. It
is written as a stream, a batch of rows at a time, one row a line, from one read transaction
(REPEATABLE READ on PostgreSQL), so a big account neither fills the server's memory nor comes
out half before and half after a change.

Calendar: a private feed per rep, reached by a long token in the URL (no cookie: phone calendars
subscribe without logging in). The token is an HMAC of the rep's id and a random nonce under the
app's secret key: the database keeps the nonce and the token's SHA-256 (to find the rep), never
the token, so a copy of the database alone opens no feed, while the app can show the rep their
link again at any time. ``rotate`` draws a new nonce and the old URL answers 404.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import json
import secrets
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..models import (
    callback_status_is,
    callbacks,
    clients,
    push_subscriptions,
    sessions,
    touches,
    users,
    utcnow,
)
from .accounts import user_dict
from .imports import FORMULA_STARTS

CLIENT_COLUMNS = (
    "id",
    "name",
    "phone",
    "email",
    "company",
    "notes",
    "talking_points",
    "tags",
    "cadence_days",
)
TOUCH_COLUMNS = (
    "id",
    "happened_at",
    "happened_local",
    "client_id",
    "client_name",
    "client_phone",
    "outcome",
    "note",
    "callback_at",
)
BATCH = 500
EVENT_MINUTES = 15
BOM = "\ufeff"


def safe_cell(value: Any) -> str:
    """One CSV cell as text, with formula-looking text guarded by an apostrophe."""
    if value is None:
        return ""
    text = str(value)
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def tags_cell(tags: list[str]) -> str:
    """Tags as one cell, "a, b"; a tag holding a separator or a quote is quoted, CSV style."""
    out = []
    for tag in tags:
        if any(mark in tag for mark in (",", ";", '"', ":::")):
            tag = '"' + tag.replace('"', '""') + '"'
        out.append(tag)
    return ", ".join(out)


def _csv_stream(header: tuple[str, ...], rows: Iterator[list[Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write(BOM)
    writer.writerow(header)
    for count, row in enumerate(rows, start=1):
        writer.writerow([safe_cell(v) for v in row])
        if count % BATCH == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def clients_csv(session: Session, user_id: str) -> Iterator[str]:
    """The rep's active clients as CSV text, in chunks; our importer reads it back unchanged."""
    stmt = (
        sa.select(*(clients.c[c] for c in CLIENT_COLUMNS))
        .where(clients.c.user_id == user_id, clients.c.archived_at.is_(None))
        .order_by(clients.c.name, clients.c.id)
        .execution_options(yield_per=BATCH)
    )

    def rows() -> Iterator[list[Any]]:
        for row in session.execute(stmt):
            values = list(row)
            values[CLIENT_COLUMNS.index("tags")] = tags_cell(row.tags or [])
            yield values

    return _csv_stream(CLIENT_COLUMNS, rows())


def touches_csv(session: Session, user_id: str, timezone: str) -> Iterator[str]:
    """Every call the rep logged, oldest first, with the time in UTC and in the rep's zone."""
    zone = ZoneInfo(timezone)
    stmt = (
        sa.select(
            touches.c.id,
            touches.c.happened_at,
            touches.c.client_id,
            clients.c.name,
            clients.c.phone,
            touches.c.outcome,
            touches.c.note,
            touches.c.callback_at,
        )
        .join(clients, clients.c.id == touches.c.client_id)
        .where(touches.c.user_id == user_id)
        .order_by(touches.c.happened_at, touches.c.id)
        .execution_options(yield_per=BATCH)
    )

    def local(instant: datetime | None) -> str:
        return instant.astimezone(zone).strftime("%Y-%m-%d %H:%M") if instant else ""

    def rows() -> Iterator[list[Any]]:
        for row in session.execute(stmt):
            yield [
                row.id,
                row.happened_at.isoformat(),
                local(row.happened_at),
                row.client_id,
                row.name,
                row.phone,
                row.outcome,
                row.note,
                local(row.callback_at),
            ]

    return _csv_stream(TOUCH_COLUMNS, rows())


# ---------------------------------------------------------------------------------------------
# The whole account, as JSON

ACCOUNT_FORMAT = "touchbase-account"
ACCOUNT_VERSION = 1

# (name in the document, columns, order) for each list; every column of the rep's rows except
# the secrets named in the module docstring and the replay fingerprints (create_hash,
# body_hash) and dispatcher bookkeeping (leases, claim tokens).
_SECTIONS: tuple[tuple[str, sa.Table, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        "clients",
        clients,
        (
            *CLIENT_COLUMNS,
            "created_at",
            "updated_at",
            "archived_at",
            "last_touch_at",
            "last_reached_at",
            "attempts_since_reached",
        ),
        ("name", "id"),
    ),
    (
        "touches",
        touches,
        (
            "id",
            "client_id",
            "outcome",
            "note",
            "happened_at",
            "callback_at",
            "callback_id",
            "created_at",
        ),
        ("happened_at", "id"),
    ),
    (
        "callbacks",
        callbacks,
        (
            "id",
            "client_id",
            "touch_id",
            "origin_at",
            "due_at",
            "status",
            "created_at",
            "updated_at",
            "done_at",
            "notified_at",
            "send_attempts",
            "last_error",
        ),
        ("due_at", "id"),
    ),
    ("push_subscriptions", push_subscriptions, ("endpoint", "created_at"), ("created_at",)),
    ("sessions", sessions, ("created_at", "seen_on"), ("created_at",)),
)
_ACCOUNT_EXTRA = ("created_at", "digest_sent_on", "weekly_sent_on", "calendar_token_at")


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


_encode = json.JSONEncoder(ensure_ascii=False, default=_json_value).encode


def account_json(session: Session, rep: Any) -> Iterator[str]:
    """Everything of the rep's as one JSON document, in chunks (see the module docstring).

    ``rep`` is the request's CurrentUser. The caller ends ``session``'s transaction afterwards.
    """
    if session.get_bind().dialect.name == "postgresql":
        # (SQLite's read transaction is a snapshot already.)
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    extra = session.execute(
        sa.select(*(users.c[c] for c in _ACCOUNT_EXTRA)).where(users.c.id == rep.id)
    ).one()
    account = {
        **user_dict(rep),
        "created_at": extra.created_at,
        "digest_sent_on": extra.digest_sent_on,
        "weekly_sent_on": extra.weekly_sent_on,
        # Whether a calendar feed exists and since when; its URL is the secret, shown in the app.
        "calendar_feed_since": extra.calendar_token_at,
    }
    head = {
        "format": ACCOUNT_FORMAT,
        "version": ACCOUNT_VERSION,
        "exported_at": utcnow(),
        "account": account,
    }
    yield _encode(head)[:-1]  # the object stays open for the lists
    for name, table, columns, order in _SECTIONS:
        stmt = (
            sa.select(*(table.c[c] for c in columns))
            .where(table.c.user_id == rep.id)
            .order_by(*(table.c[c] for c in order))
            .execution_options(yield_per=BATCH)
        )
        parts = [f', "{name}": [']
        separator = "\n"
        for count, row in enumerate(session.execute(stmt), start=1):
            parts.append(separator + _encode(row._asdict()))
            separator = ",\n"
            if count % BATCH == 0:
                yield "".join(parts)
                parts = []
        parts.append("\n]")
        yield "".join(parts)
    yield "}\n"


# ---------------------------------------------------------------------------------------------
# Calendar feed


def token_hash(token: str) -> str:
    """What is stored for a feed token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def calendar_token(secret_key: str | bytes, user_id: str, nonce: str) -> str:
    """The feed token for this rep and nonce (43 URL-safe characters)."""
    key = secret_key.encode() if isinstance(secret_key, str) else secret_key
    digest = hmac.new(key, f"calendar-feed:{user_id}:{nonce}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def current_calendar(session: Session, user_id: str) -> tuple[str | None, datetime | None]:
    """The rep's feed nonce and when it was drawn; (None, None) before the first feed."""
    row = session.execute(
        sa.select(users.c.calendar_nonce, users.c.calendar_token_at).where(users.c.id == user_id)
    ).first()
    return (row.calendar_nonce, row.calendar_token_at) if row else (None, None)


def new_calendar_nonce(
    conn: sa.Connection, secret_key: str | bytes, user_id: str, *, only_if_none: bool = False
) -> bool:
    """Draw a new nonce for the rep's feed (the old URL stops working); True if one was set.

    With ``only_if_none``, only when the rep has no feed yet: the condition is part of the
    UPDATE, so two first visits at once cannot both make one. The caller commits.
    """
    nonce = secrets.token_urlsafe(16)
    stmt = sa.update(users).where(users.c.id == user_id)
    if only_if_none:
        stmt = stmt.where(users.c.calendar_nonce.is_(None))
    token = calendar_token(secret_key, user_id, nonce)
    result = conn.execute(
        stmt.values(
            calendar_nonce=nonce, calendar_token_hash=token_hash(token), calendar_token_at=utcnow()
        )
    )
    return bool(result.rowcount)


def feed_owner(session: Session, token: str) -> str | None:
    """The id of the rep whose feed ``token`` opens, or None."""
    if not token or len(token) > 100:
        return None
    return session.execute(
        sa.select(users.c.id).where(users.c.calendar_token_hash == token_hash(token))
    ).scalar()


def calendar_feed(session: Session, user_id: str, origin: str) -> bytes:
    """The rep's open callbacks (clients not archived) as an iCalendar document.

    One 15-minute event per promise at its due time. The UID comes from the callback's id, so a
    calendar that polls the feed updates the same event when a promise is snoozed.
    """
    last_note = (
        sa.select(touches.c.note)
        .where(
            touches.c.client_id == clients.c.id,
            touches.c.note.is_not(None),
            touches.c.note != "",
        )
        .order_by(touches.c.happened_at.desc(), touches.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    stmt = (
        sa.select(
            callbacks.c.id,
            callbacks.c.due_at,
            callbacks.c.updated_at,
            clients.c.id.label("client_id"),
            clients.c.name,
            clients.c.phone,
            last_note.label("last_note"),
        )
        .join(clients, clients.c.id == callbacks.c.client_id)
        .where(
            callbacks.c.user_id == user_id,
            callback_status_is("open"),
            clients.c.archived_at.is_(None),
        )
        .order_by(callbacks.c.due_at, callbacks.c.id)
    )
    cal = icalendar.Calendar()
    cal.add("prodid", "-//Touchbase//Callbacks//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", "Touchbase callbacks")
    # A hint to calendar apps on how often to poll (Apple and Google read one or the other).
    cal.add("refresh-interval", timedelta(minutes=30), parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", "PT30M")
    for row in session.execute(stmt):
        event = icalendar.Event()
        event.add("uid", f"callback-{row.id}@touchbase")
        event.add("dtstamp", row.updated_at)
        event.add("last-modified", row.updated_at)
        event.add("dtstart", row.due_at)
        event.add("dtend", row.due_at + timedelta(minutes=EVENT_MINUTES))
        event.add("summary", f"Call {row.name}")
        lines = [row.phone or "No phone number saved."]
        if row.last_note:
            lines.append(f"Last note: {row.last_note}")
        event.add("description", "\n".join(lines))
        event.add("url", f"{origin}/#/clients/{row.client_id}")
        cal.add_component(event)
    return cal.to_ical()
