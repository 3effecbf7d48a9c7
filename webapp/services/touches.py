"""The call log: record a touch idempotently and keep the client's derived fields right.

This is the hot path (one tap on the phone = one request), so it uses Core statements in one
short write transaction and reads only what the write needs.

Order rule (API.md): derived fields follow ``happened_at``, not arrival. A phone that syncs late
may deliver an older touch after newer ones; the result must equal in-order arrival. So:
- a touch newer than every other one updates the client incrementally (the common case);
- an older one makes the client's fields be recomputed from the whole log;
- a callback is fulfilled by any touch that happened after the touch that promised it, so a
  promise delivered late is born already kept if a later touch exists.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..db import Prepared, UTCDateTime, Writer
from ..errors import ApiError
from ..models import callbacks, clients, new_id, touches, utcnow
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

# RETURNING tells whether the row went in (rowcount is -1 on psycopg here, so not that).
_INSERT = {
    name: Prepared(
        module.insert(touches)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(touches.c.id),
        column_keys=[c.key for c in touches.c],
    )
    for name, module in (("sqlite", sqlite), ("postgresql", postgresql))
}
_EXISTING = Prepared(
    sa.select(touches.c.user_id, touches.c.body_hash, *TOUCH_COLUMNS).where(
        touches.c.id == _P("id")
    )
)

# A touch newer than all others: update the client in place.
_NEWEST_REACHED = Prepared(
    sa.update(clients)
    .where(clients.c.id == _P("cid"))
    .values(last_touch_at=_H, last_reached_at=_H, attempts_since_reached=0, updated_at=_NOW)
)
_NEWEST_ATTEMPT = Prepared(
    sa.update(clients)
    .where(clients.c.id == _P("cid"))
    .values(
        last_touch_at=_H,
        attempts_since_reached=clients.c.attempts_since_reached + 1,
        updated_at=_NOW,
    )
)


def _recompute_statement() -> sa.Update:
    """Rebuild the derived fields of one client from its whole log (for a late arrival)."""
    t = touches.alias("t")
    mine = t.c.client_id == _P("cid")
    last_reached = (
        sa.select(sa.func.max(t.c.happened_at))
        .where(mine, t.c.outcome == "reached")
        .scalar_subquery()
    )
    return (
        sa.update(clients)
        .where(clients.c.id == _P("cid"))
        .values(
            last_touch_at=sa.select(sa.func.max(t.c.happened_at)).where(mine).scalar_subquery(),
            last_reached_at=last_reached,
            attempts_since_reached=sa.select(sa.func.count())
            .select_from(t)
            .where(
                mine,
                t.c.outcome != "reached",
                sa.or_(last_reached.is_(None), t.c.happened_at > last_reached),
            )
            .scalar_subquery(),
            updated_at=_NOW,
        )
    )


_RECOMPUTE = Prepared(_recompute_statement())

# Any touch keeps the promises made before it (and an earlier kept date wins).
_KEEPS_PROMISE = sa.and_(
    callbacks.c.client_id == _P("cid"),
    callbacks.c.origin_at < _H,
    sa.or_(
        callbacks.c.status == "open",
        sa.and_(callbacks.c.status == "done", callbacks.c.done_at > _H),
    ),
)
_FULFIL = Prepared(
    sa.update(callbacks).where(_KEEPS_PROMISE).values(status="done", done_at=_H, updated_at=_NOW)
)

# One read before the writes: the client's row (locked, and proving it is this rep's), whether
# the new touch is the latest, and whether it keeps any promise (most touches keep none).
_LOCK_CLIENT = Prepared(
    sa.select(
        clients.c.last_touch_at,
        sa.exists().where(_KEEPS_PROMISE).label("keeps_promise"),
    )
    .where(clients.c.id == _P("cid"), clients.c.user_id == _P("uid"))
    .with_for_update(of=clients)
)
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


def fingerprint(user_id: str, sent: dict[str, Any]) -> str:
    """A hash of the fields the caller sent (not server defaults), for replay comparison."""
    canon = {
        key: value.isoformat() if isinstance(value, datetime) else value
        for key, value in sent.items()
    }
    canon["_user"] = user_id
    return hashlib.sha256(json.dumps(canon, sort_keys=True, default=str).encode()).hexdigest()


def record_touch(conn: Writer, user_id: str, data: dict[str, Any]) -> tuple[dict, bool]:
    """Record one touch; return it and whether it was new (201) or a replay (200).

    ``conn`` (from ``db.fast_write()``) is in the caller's write transaction, which commits on
    return and rolls back when this raises. ``data`` is the loaded request body: ids as
    strings or UUIDs, instants aware.
    """
    # Ids as text and instants in UTC, so "the same body" does not depend on how it was written.
    sent = {
        k: str(v) if k.endswith("id") else v.astimezone(UTC) if isinstance(v, datetime) else v
        for k, v in data.items()
    }
    body_hash = fingerprint(user_id, sent)
    now = utcnow()
    touch_id = sent["id"]
    client_id = sent["client_id"]
    happened = sent.get("happened_at") or now
    if happened > now + MAX_CLOCK_SKEW:
        raise ApiError(422, fields={"happened_at": ["A call cannot happen in the future."]})
    callback_at = sent.get("callback_at")
    callback_id = sent.get("callback_id") if callback_at else None
    touch = {
        "id": touch_id,
        "client_id": client_id,
        "outcome": sent["outcome"],
        "note": sent.get("note"),
        "happened_at": happened,
        "callback_at": callback_at,
        "callback_id": None,
        "created_at": now,
    }

    # Lock the client row first: concurrent touches on one client queue here, so each one's
    # recompute sees the others (PostgreSQL, READ COMMITTED). SQLite's IMMEDIATE already does.
    params = {"cid": client_id, "uid": user_id, "happened": happened, "now": now}
    client = conn.first(_LOCK_CLIENT, params)
    if client is None:
        raise ApiError(404, "No such client.")
    last_touch_at, keeps_promise = client

    if callback_at is not None:
        touch["callback_id"] = callback_id or new_id()
    inserted = conn.first(
        _INSERT[conn.dialect.name], {**touch, "user_id": user_id, "body_hash": body_hash}
    )
    if inserted is None:
        return _replay(conn, touch_id, user_id, body_hash), False

    in_order = last_touch_at is None or happened > last_touch_at
    if not in_order:
        update = _RECOMPUTE
    elif touch["outcome"] == "reached":
        update = _NEWEST_REACHED
    else:
        update = _NEWEST_ATTEMPT
    conn.run(update, params)
    if keeps_promise:
        conn.run(_FULFIL, params)
    if callback_at is not None:
        _open_callback(conn, user_id, touch, in_order, params)
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


def _replay(conn: Writer, touch_id: str, user_id: str, body_hash: str) -> dict[str, Any]:
    row = conn.first_mapping(_EXISTING, {"id": touch_id})
    if row is None or row["user_id"] != user_id or row["body_hash"] != body_hash:
        raise ApiError(409, "A touch with this id was already recorded with different details.")
    return {c.key: row[c.key] for c in TOUCH_COLUMNS}


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
