"""Callbacks (promises to call again): list, snooze, cancel."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..errors import ApiError
from ..models import callbacks, utcnow
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
        stmt = stmt.where(callbacks.c.status == status)
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
            callbacks.c.status == "open",
        )
        .values(status="cancelled", claimed_until=None, claim_token=None, updated_at=utcnow())
    )
    session.commit()
