"""The call log: record a touch idempotently and keep the client's derived fields right.

This is the hot path (one tap on the phone = one request), so it uses Core statements in one
short write transaction and reads only what the write needs. Everything that needs no database
(checks, the fingerprint) is done first (``prepare_touch``), so that the write lock, which SQLite
gives one writer at a time, is held only for the statements (``write_touch``). The common case
is two statements: insert the touch, update the client.

Order rule (API.md): derived fields follow ``happened_at``, not arrival. A phone that syncs late
may deliver an older touch after newer ones; the result must equal in-order arrival. So:
- a touch newer than every other one updates the client incrementally (the common case);
- an older one makes the client's fields be recomputed from the log;
- a callback is fulfilled by any touch that happened after the touch that promised it, so a
  promise delivered late is born already kept if a later touch exists.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..db import Prepared, UTCDateTime, Writer
from ..errors import ApiError
from ..models import callback_status_is, callbacks, clients, new_id, touches, utcnow
from .pagination import fetch_page

# A phone's clock may run a little fast; a touch from further in the future is a mistake.
MAX_CLOCK_SKEW = timedelta(hours=1)

TOUCH_COLUMNS = [c for c in touches.c if c.key not in ("user_id", "body_hash")]

# The hot path's statements are Core, built and compiled once (``Prepared``), with bound
# parameters, so each request only binds values and runs them on the driver.
_P = sa.bindparam
_INSTANT = UTCDateTime()
_H = _P("happened", type_=_INSTANT)
_NOW = _P("now", type_=_INSTANT)

# The driver's count of inserted rows (0 on a conflict) tells whether the row went in. (That is
# cheaper than RETURNING, whose result set must be fetched: about 5% of SQLite's write turn.)
_INSERT = {
    name: Prepared(
        module.insert(touches).on_conflict_do_nothing(index_elements=["id"]),
        column_keys=[c.key for c in touches.c],
    )
    for name, module in (("sqlite", sqlite), ("postgresql", postgresql))
}
_EXISTING = Prepared(
    sa.select(touches.c.user_id, touches.c.body_hash, *TOUCH_COLUMNS).where(
        touches.c.id == _P("id")
    )
)


# Any touch keeps the promises made before it (and an earlier kept date wins).
_KEEPS_PROMISE = sa.and_(
    callbacks.c.client_id == _P("cid"),
    callbacks.c.origin_at < _H,
    sa.or_(
        callback_status_is("open"),
        sa.and_(callback_status_is("done"), callbacks.c.done_at > _H),
    ),
)
_FULFIL = Prepared(
    sa.update(callbacks).where(_KEEPS_PROMISE).values(status="done", done_at=_H, updated_at=_NOW)
)

# The common case, a touch newer than every other one of the client: update the client in
# place, in the statement that also proves the client is this rep's, and learn whether the
# touch keeps a promise (most keep none, so the fulfilment usually need not run). No row back
# means "not this rep's client" or "not the newest": the slow path tells them apart.
_IS_NEWEST = sa.and_(
    clients.c.id == _P("cid"),
    clients.c.user_id == _P("uid"),
    sa.or_(clients.c.last_touch_at.is_(None), clients.c.last_touch_at < _H),
)
_KEEPS_PROMISE_HINT = sa.exists().where(_KEEPS_PROMISE).label("keeps_promise")
_NEWEST_REACHED = Prepared(
    sa.update(clients)
    .where(_IS_NEWEST)
    .values(last_touch_at=_H, last_reached_at=_H, attempts_since_reached=0, updated_at=_NOW)
    .returning(_KEEPS_PROMISE_HINT)
)
_NEWEST_ATTEMPT = Prepared(
    sa.update(clients)
    .where(_IS_NEWEST)
    .values(
        last_touch_at=_H,
        attempts_since_reached=clients.c.attempts_since_reached + 1,
        updated_at=_NOW,
    )
    .returning(_KEEPS_PROMISE_HINT)
)

# The slow path's first read: the client, if it is this rep's, locked so that concurrent late
# arrivals on one client queue here (PostgreSQL, READ COMMITTED) and each recompute sees the
# others. NO KEY UPDATE rather than UPDATE: touches being inserted beside it hold KEY SHARE
# locks on the client (their foreign key), which UPDATE would wait for, and they for it.
_LOCK_CLIENT = Prepared(
    sa.select(clients.c.id)
    .where(clients.c.id == _P("cid"), clients.c.user_id == _P("uid"))
    .with_for_update(of=clients, key_share=True)
)

# Instants are validated to lie after 1900 (schemas.Instant): this floor is below them all.
_FLOOR = datetime(1, 1, 1, tzinfo=UTC)


def _recompute_statement() -> sa.Update:
    """Rebuild the derived fields of one client from its log (for a late arrival).

    Each part reads a range of the (client_id, happened_at) index, not the whole log: the
    latest touch is the end of it, the latest "reached" is found walking back from there, and
    the attempts are the touches after that. (A max() filtered on the outcome, or an OR in the
    count, made SQLite read every touch of the client, so late arrivals slowed as a log grew.)
    """
    t = touches.alias("t")
    mine = t.c.client_id == _P("cid")
    last_reached = (
        sa.select(t.c.happened_at)
        .where(mine, t.c.outcome == "reached")
        .order_by(t.c.happened_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    since = sa.func.coalesce(last_reached, _P("floor", _FLOOR, type_=_INSTANT))
    return (
        sa.update(clients)
        .where(clients.c.id == _P("cid"))
        .values(
            last_touch_at=sa.select(sa.func.max(t.c.happened_at)).where(mine).scalar_subquery(),
            last_reached_at=last_reached,
            attempts_since_reached=sa.select(sa.func.count())
            .select_from(t)
            .where(mine, t.c.happened_at > since, t.c.outcome != "reached")
            .scalar_subquery(),
            updated_at=_NOW,
        )
    )


_RECOMPUTE = Prepared(_recompute_statement())
_FIRST_LATER_TOUCH = Prepared(
    sa.select(sa.func.min(touches.c.happened_at).label("first")).where(
        touches.c.client_id == _P("cid"), touches.c.happened_at > _H
    )
)
_CALLBACK_KEYS = [
    "id",
    "user_id",
    "client_id",
    "touch_id",
    "origin_at",
    "due_at",
    "status",
    "done_at",
    "created_at",
    "updated_at",
]
_INSERT_CALLBACK = Prepared(sa.insert(callbacks), column_keys=_CALLBACK_KEYS)


# ``json.dumps(canon, sort_keys=True, default=str)``, with the encoder made once: given options,
# json.dumps builds a new one on every call (a third of the fingerprint's time).
_CANONICAL = json.JSONEncoder(sort_keys=True, default=str)


def fingerprint(user_id: str, sent: dict[str, Any]) -> str:
    """A hash of the fields the caller sent (not server defaults), for replay comparison.

    Stored with each touch, so its text must never change: a replay after an upgrade would
    answer 409 (tests/unit/test_touch_fingerprint.py holds it to known digests).
    """
    canon = {
        key: value.isoformat() if isinstance(value, datetime) else value
        for key, value in sent.items()
    }
    canon["_user"] = user_id
    return hashlib.sha256(_CANONICAL.encode(canon).encode()).hexdigest()


@dataclass(frozen=True)
class NewTouch:
    """A touch as sent, checked and fingerprinted: everything that needs no database."""

    user_id: str
    id: str
    client_id: str
    outcome: str
    note: str | None
    happened_at: datetime | None  # None: the server's clock, read inside the transaction
    callback_at: datetime | None
    callback_id: str | None
    body_hash: str


def prepare_touch(user_id: str, data: dict[str, Any]) -> NewTouch:
    """Check and fingerprint a loaded request body (ids as strings or UUIDs, instants aware).

    Call it before the write transaction starts: none of this needs the write lock.
    """
    # Ids as text and instants in UTC, so "the same body" does not depend on how it was written.
    sent = {
        k: str(v) if k.endswith("id") else v.astimezone(UTC) if isinstance(v, datetime) else v
        for k, v in data.items()
    }
    happened = sent.get("happened_at")
    if happened is not None and happened > utcnow() + MAX_CLOCK_SKEW:
        raise ApiError(422, fields={"happened_at": ["A call cannot happen in the future."]})
    callback_at = sent.get("callback_at")
    return NewTouch(
        user_id=user_id,
        id=sent["id"],
        client_id=sent["client_id"],
        outcome=sent["outcome"],
        note=sent.get("note"),
        happened_at=happened,
        callback_at=callback_at,
        # (The schema refuses a callback_id without a callback_at.)
        callback_id=(sent.get("callback_id") or new_id()) if callback_at else None,
        body_hash=fingerprint(user_id, sent),
    )


def record_touch(conn: Writer, user_id: str, data: dict[str, Any]) -> tuple[dict, bool]:
    """Record one touch; return it and whether it was new (201) or a replay (200).

    ``conn`` (from ``db.fast_write()``) is in the caller's write transaction, which commits on
    return and rolls back when this raises. ``data`` is the loaded request body. (The API view
    calls ``prepare_touch`` before opening the transaction, then ``write_touch``.)
    """
    return write_touch(conn, prepare_touch(user_id, data))


def write_touch(conn: Writer, new: NewTouch) -> tuple[dict, bool]:
    """The database part of ``record_touch``: one touch from ``prepare_touch``."""
    # The clock is read inside the transaction: on SQLite, arrival stamps then follow commit
    # order (the sync cursor reads by arrival), and a touch stamped "now" is the newest.
    now = utcnow()
    happened = new.happened_at or now
    touch = {
        "id": new.id,
        "client_id": new.client_id,
        "outcome": new.outcome,
        "note": new.note,
        "happened_at": happened,
        "callback_at": new.callback_at,
        "callback_id": new.callback_id,
        "created_at": now,
    }
    row = {**touch, "user_id": new.user_id, "body_hash": new.body_hash}
    params = {"cid": new.client_id, "uid": new.user_id, "happened": happened, "now": now}
    try:
        inserted = conn.run(_INSERT[conn.dialect.name], row)
    except IntegrityError as exc:
        # A loaded body can only break the foreign keys here: no such client (or rep).
        raise ApiError(404, "No such client.") from exc
    if not inserted:
        return _replay(conn, new, params), False

    newest = conn.first(_NEWEST_REACHED if new.outcome == "reached" else _NEWEST_ATTEMPT, params)
    if newest is None:
        # Another rep's client (raising undoes the insert), or a late arrival.
        if conn.first(_LOCK_CLIENT, params) is None:
            raise ApiError(404, "No such client.")
        conn.run(_RECOMPUTE, params)
    # SQLite runs one writer at a time, so the hint is exact there. PostgreSQL evaluates it with
    # the statement's snapshot, which may predate a promise committed while the update waited
    # for the client's row lock: there the fulfilment (a new snapshot) always runs.
    if newest is None or newest[0] or conn.dialect.name != "sqlite":
        conn.run(_FULFIL, params)
    if new.callback_at is not None:
        _open_callback(conn, new.user_id, touch, newest is not None, params)
    return touch, True


def _open_callback(
    conn: Writer,
    user_id: str,
    touch: dict[str, Any],
    in_order: bool,
    params: dict[str, Any],
) -> None:
    # Delivered late, after a later touch: that later touch already kept this promise.
    done_at = None if in_order else conn.first(_FIRST_LATER_TOUCH, params)[0]  # type: ignore[index]
    try:
        conn.run(
            _INSERT_CALLBACK,
            {
                "id": touch["callback_id"],
                "user_id": user_id,
                "client_id": touch["client_id"],
                "touch_id": touch["id"],
                "origin_at": touch["happened_at"],
                "due_at": touch["callback_at"],
                "status": "open" if done_at is None else "done",
                "done_at": done_at,
                "created_at": params["now"],
                "updated_at": params["now"],
            },
        )
    except IntegrityError as exc:
        # The whole touch is undone: the phone keeps it in its outbox and the rep sees why.
        raise ApiError(409, "That callback_id is already used by another promise.") from exc


def _replay(conn: Writer, new: NewTouch, params: dict[str, Any]) -> dict[str, Any]:
    row = conn.first_mapping(_EXISTING, {"id": new.id})
    if row is not None and row["user_id"] == new.user_id and row["body_hash"] == new.body_hash:
        # The same body (client included) was recorded for this rep: its client was checked then.
        return {c.key: row[c.key] for c in TOUCH_COLUMNS}
    # Someone else's client answers 404, whatever the id, as it did before the id was looked at.
    if conn.first(_LOCK_CLIENT, params) is None:
        raise ApiError(404, "No such client.")
    raise ApiError(409, "A touch with this id was already recorded with different details.")


def list_touches(
    session: Session, user_id: str, client_id: str, *, cursor: str | None = None, limit: int = 100
) -> dict[str, Any]:
    """One client's touches, newest first; 404 when the client is not this rep's."""
    owner = session.execute(
        sa.select(clients.c.id).where(clients.c.id == client_id, clients.c.user_id == user_id)
    ).first()
    if owner is None:
        raise ApiError(404, "No such client.")
    stmt = sa.select(*TOUCH_COLUMNS).where(touches.c.client_id == client_id)
    order = [touches.c.happened_at, touches.c.id]
    return fetch_page(session, stmt, order, cursor, limit, descending=True)


def list_rep_touches(
    session: Session,
    user_id: str,
    *,
    updated_since: datetime | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    """All of this rep's touches, newest first; or, for sync, those that arrived since a time.

    Touches never change once written, so arrival (``created_at``) is the sync cursor.
    """
    stmt = sa.select(*TOUCH_COLUMNS).where(touches.c.user_id == user_id)
    if updated_since is not None:
        stmt = stmt.where(touches.c.created_at > updated_since)
        order, descending = [touches.c.created_at, touches.c.id], False
    else:
        order, descending = [touches.c.happened_at, touches.c.id], True
    return fetch_page(session, stmt, order, cursor, limit, descending=descending)
