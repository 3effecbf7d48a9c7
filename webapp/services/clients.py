"""Clients: create, find, change and archive, always scoped to one rep."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..errors import ApiError
from ..models import callback_status_is, callbacks, clients, new_id, utcnow
from .pagination import fetch_page
from .phones import normalise_phone

EDITABLE = ("name", "phone", "email", "company", "notes", "talking_points", "tags", "cadence_days")

# The soonest open callback of each client, as correlated subqueries (index: client_id, status).
_open_cb = (
    sa.select(callbacks.c.id, callbacks.c.due_at)
    .where(callbacks.c.client_id == clients.c.id, callback_status_is("open"))
    .order_by(callbacks.c.due_at, callbacks.c.id)
    .limit(1)
)
_OPEN_CB_ID = _open_cb.with_only_columns(callbacks.c.id).scalar_subquery().label("open_cb_id")
_OPEN_CB_DUE = _open_cb.with_only_columns(callbacks.c.due_at).scalar_subquery().label("open_cb_due")

CLIENT_COLUMNS = [c for c in clients.c if c.key not in ("user_id", "create_hash")]
CLIENT_SELECT = sa.select(*CLIENT_COLUMNS, _OPEN_CB_ID, _OPEN_CB_DUE)


def client_dict(row: Any) -> dict[str, Any]:
    """Turn a row of ``CLIENT_SELECT`` into the API's client shape."""
    data = {c.key: row[c.key] for c in CLIENT_COLUMNS}
    data["tags"] = data["tags"] or []
    cb_id = row["open_cb_id"]
    data["open_callback"] = {"id": cb_id, "due_at": row["open_cb_due"]} if cb_id else None
    return data


def _fingerprint(user_id: str, data: dict[str, Any]) -> str:
    canon = json.dumps({"user": user_id, **data}, sort_keys=True, default=str)
    return hashlib.sha256(canon.encode()).hexdigest()


def clean_fields(data: dict[str, Any], region: str) -> dict[str, Any]:
    """Normalise edited fields: trimmed text, E.164 phone, unique tags, empty text as null."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key == "phone":
            value = normalise_phone(value, region)
        elif key == "tags":
            seen: dict[str, None] = {}
            for tag in value or []:
                tag = " ".join(tag.split())
                if tag and tag.lower() not in {t.lower() for t in seen}:
                    seen[tag] = None
            value = list(seen)
        elif isinstance(value, str):
            value = value.strip()
            if key != "name" and not value:
                value = None
        out[key] = value
    if "name" in out and not out["name"]:
        raise ApiError(422, fields={"name": ["The name cannot be blank."]})
    return out


def get_client(session: Session, user_id: str, client_id: str) -> dict[str, Any]:
    """One client of this rep, archived or not; 404 when missing or another rep's."""
    row = (
        session.execute(
            CLIENT_SELECT.where(clients.c.id == client_id, clients.c.user_id == user_id)
        )
        .mappings()
        .first()
    )
    if row is None:
        raise ApiError(404, "No such client.")
    return client_dict(row)


def get_clients(session: Session, user_id: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Several clients of this rep by id, as a dict keyed by id."""
    ids = list(ids)
    if not ids:
        return {}
    rows = session.execute(
        CLIENT_SELECT.where(clients.c.user_id == user_id, clients.c.id.in_(ids))
    ).mappings()
    return {row["id"]: client_dict(row) for row in rows}


def create_client(
    session: Session, user_id: str, data: dict[str, Any], region: str
) -> tuple[dict[str, Any], bool]:
    """Create a client; return it and whether it is new.

    A client-chosen ``id`` makes the create idempotent: the same id with the same body returns
    the existing client (an offline phone replaying its outbox); with another body it is a 409.
    """
    client_id = str(data.pop("id")) if data.get("id") else None
    fingerprint = _fingerprint(user_id, data)
    fields = clean_fields(data, region)
    if client_id is not None:
        existing = _replayed(session, user_id, client_id, fingerprint)
        if existing is not None:
            return existing, False
    now = utcnow()
    values = {
        "id": client_id or new_id(),
        "user_id": user_id,
        "tags": [],
        **fields,
        "created_at": now,
        "updated_at": now,
        "create_hash": fingerprint,
    }
    try:
        session.execute(sa.insert(clients).values(values))
        session.commit()
    except IntegrityError:
        # Two replays raced: the other one won. Answer as a replay would.
        session.rollback()
        existing = _replayed(session, user_id, values["id"], fingerprint)
        if existing is None:
            raise
        return existing, False
    return get_client(session, user_id, values["id"]), True


def _replayed(
    session: Session, user_id: str, client_id: str, fingerprint: str
) -> dict[str, Any] | None:
    row = session.execute(
        sa.select(clients.c.user_id, clients.c.create_hash).where(clients.c.id == client_id)
    ).first()
    if row is None:
        return None
    if row.user_id != user_id or row.create_hash != fingerprint:
        raise ApiError(409, "A client with this id already exists with different details.")
    return get_client(session, user_id, client_id)


def update_client(
    session: Session, user_id: str, client_id: str, changes: dict[str, Any], region: str
) -> dict[str, Any]:
    """Change the given fields of one client."""
    fields = clean_fields(changes, region)
    result = session.execute(
        sa.update(clients)
        .where(clients.c.id == client_id, clients.c.user_id == user_id)
        .values(**fields, updated_at=utcnow())
    )
    if result.rowcount == 0:
        session.rollback()
        raise ApiError(404, "No such client.")
    session.commit()
    return get_client(session, user_id, client_id)


def archive_client(session: Session, user_id: str, client_id: str) -> None:
    """Archive: off every list and today's list, history kept, open promises cancelled."""
    now = utcnow()
    result = session.execute(
        sa.update(clients)
        .where(clients.c.id == client_id, clients.c.user_id == user_id)
        .values(archived_at=sa.func.coalesce(clients.c.archived_at, now), updated_at=now)
    )
    if result.rowcount == 0:
        session.rollback()
        raise ApiError(404, "No such client.")
    session.execute(
        sa.update(callbacks)
        .where(callbacks.c.client_id == client_id, callback_status_is("open"))
        .values(status="cancelled", updated_at=now)
    )
    session.commit()


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_clients(
    session: Session,
    user_id: str,
    *,
    q: str | None = None,
    updated_since: datetime | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    """Active clients by name, or (``updated_since``) every change since then, for sync."""
    stmt = CLIENT_SELECT.where(clients.c.user_id == user_id)
    if updated_since is not None:
        # Sync wants archived clients too, so the phone can drop them.
        stmt = stmt.where(clients.c.updated_at > updated_since)
        order = [clients.c.updated_at, clients.c.id]
    else:
        stmt = stmt.where(clients.c.archived_at.is_(None))
        order = [clients.c.name, clients.c.id]
    if q and q.strip():
        stmt = stmt.where(_search(q.strip()))
    return fetch_page(session, stmt, order, cursor, limit, item=client_dict)


def _search(q: str) -> sa.ColumnElement[bool]:
    pattern = f"%{_escape_like(q.lower())}%"
    conditions = [
        sa.func.lower(col).like(pattern, escape="\\")
        for col in (clients.c.name, clients.c.company, clients.c.email, clients.c.phone)
    ]
    digits = "".join(ch for ch in q if ch.isdigit())
    if len(digits) >= 3:
        # "555 0100" finds "+15550100": phones are stored as E.164 digits.
        conditions.append(clients.c.phone.like(f"%{digits}%"))
    return sa.or_(*conditions)
