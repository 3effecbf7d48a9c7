"""Callbacks (promises to call again): list, snooze, cancel."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..errors import ApiError
from ..models import callback_status_is, callbacks, clients, utcnow
from .pagination import fetch_page

CALLBACK_COLUMNS = [
    callbacks.c[name]
    for name in (
        "id",
        "client_id",
        "due_at",
        "status",
        "created_at",
        "updated_at",
        "done_at",
        "notified_at",
        "last_error",
    )
]


def list_callbacks(
    session: Session,
    user_id: str,
    *,
    status: str | None = None,
    updated_since: datetime | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    """This rep's callbacks: soonest first, or (``updated_since``) every change, for sync."""
    stmt = sa.select(*CALLBACK_COLUMNS).where(callbacks.c.user_id == user_id)
    if status:
        stmt = stmt.where(callback_status_is(status))
    if updated_since is not None:
        stmt = stmt.where(callbacks.c.updated_at > updated_since)
        order = [callbacks.c.updated_at, callbacks.c.id]
    else:
        order = [callbacks.c.due_at, callbacks.c.id]
    return fetch_page(session, stmt, order, cursor, limit)


def get_callback(session: Session, user_id: str, callback_id: str) -> dict[str, Any]:
    """One callback of this rep; 404 when missing or another rep's."""
    row = (
        session.execute(
            sa.select(*CALLBACK_COLUMNS).where(
                callbacks.c.id == callback_id, callbacks.c.user_id == user_id
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise ApiError(404, "No such callback.")
    return dict(row)


def create_callback(
    session: Session, user_id: str, callback_id: str, client_id: str, due_at: datetime
) -> tuple[dict[str, Any], bool]:
    """Open a promise for one of this rep's clients; return it and whether it is new.

    The new promise replaces the client's other open ones (the rep is moving the date). A replay
    of the same id for the same client is not an error: the phone may not have seen the answer.
    """
    existing = session.execute(
        sa.select(callbacks.c.user_id, callbacks.c.client_id).where(callbacks.c.id == callback_id)
    ).first()
    if existing is not None:
        session.rollback()
        if existing.user_id == user_id and existing.client_id == client_id:
            return get_callback(session, user_id, callback_id), False
        raise ApiError(409, "That callback id is already used by another promise.")
    owner = session.execute(
        sa.select(clients.c.id).where(
            clients.c.id == client_id,
            clients.c.user_id == user_id,
            clients.c.archived_at.is_(None),
        )
    ).first()
    if owner is None:
        session.rollback()
        raise ApiError(404, "No such client.")
    now = utcnow()
    session.execute(
        sa.update(callbacks)
        .where(callbacks.c.client_id == client_id, callback_status_is("open"))
        .values(status="cancelled", claimed_until=None, claim_token=None, updated_at=now)
    )
    session.execute(
        sa.insert(callbacks).values(
            id=callback_id,
            user_id=user_id,
            client_id=client_id,
            origin_at=now,
            due_at=due_at,
            status="open",
            created_at=now,
            updated_at=now,
        )
    )
    try:
        session.commit()
    except sa.exc.IntegrityError as exc:  # the same id, arriving twice at the same moment
        session.rollback()
        raise ApiError(409, "That callback id is already used by another promise.") from exc
    return get_callback(session, user_id, callback_id), True


def snooze_callback(
    session: Session, user_id: str, callback_id: str, until: datetime
) -> dict[str, Any]:
    """Move a promise to ``until``. It will notify again then.

    A cancelled promise is re-opened: the rep changed their mind (e.g. picked "None", then
    "Thursday"). One already kept by a later call answers 409: there is nothing left to move.
    """
    current = get_callback(session, user_id, callback_id)
    if current["status"] == "done":
        session.rollback()
        raise ApiError(409, "This callback was already kept by a later call.")
    session.execute(
        sa.update(callbacks)
        .where(callbacks.c.id == callback_id, callbacks.c.user_id == user_id)
        .values(
            due_at=until,
            status="open",
            notified_at=None,
            # A dispatcher still holding the old lease must not mark the new time notified.
            claimed_until=None,
            claim_token=None,
            send_attempts=0,
            last_error=None,
            updated_at=utcnow(),
        )
    )
    session.commit()
    return get_callback(session, user_id, callback_id)


def cancel_callback(session: Session, user_id: str, callback_id: str) -> None:
    """Cancel an open promise. Cancelling twice, or one already kept, changes nothing."""
    get_callback(session, user_id, callback_id)
    session.execute(
        sa.update(callbacks)
        .where(
            callbacks.c.id == callback_id,
            callbacks.c.user_id == user_id,
            callback_status_is("open"),
        )
        .values(status="cancelled", claimed_until=None, claim_token=None, updated_at=utcnow())
    )
    session.commit()
