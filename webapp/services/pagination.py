"""Keyset pagination with opaque cursors, as API.md's lists need (``items`` + ``next_cursor``).

A cursor is the sort key of the last item sent, base64url-encoded JSON. Keyset (rather than
OFFSET) stays fast on deep pages and does not skip or repeat rows when others are inserted.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..db import UTCDateTime
from ..errors import ApiError


def encode_cursor(values: Sequence[Any]) -> str:
    """Pack sort-key values (str, int, aware datetime or None) into an opaque token."""
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    raw = json.dumps(plain, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str, columns: Sequence[sa.ColumnElement[Any]]) -> list[Any]:
    """Unpack a token made by ``encode_cursor`` for these sort columns; 400 if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != len(columns):
            raise ValueError("wrong length")
        return [_sort_value(v, col) for v, col in zip(values, columns, strict=True)]
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError) as exc:
        raise ApiError(400, "The cursor is not valid; start again without it.") from exc


def _sort_value(value: Any, column: sa.ColumnElement[Any]) -> Any:
    # A forged cursor must not reach the database: an object, a number, a naive or out-of-range
    # instant or a NUL character there is a driver error (a 500), not a 400.
    if isinstance(column.type, UTCDateTime):
        instant = datetime.fromisoformat(value)
        if instant.tzinfo is None:
            raise ValueError("naive instant")
        return instant.astimezone(UTC)
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError("not a text sort key")
    return value


def paginate(
    stmt: sa.Select[Any],
    order: Sequence[sa.ColumnElement[Any]],
    cursor: str | None,
    limit: int,
    *,
    descending: bool = False,
) -> tuple[sa.Select[Any], Callable[[list[Any]], str | None]]:
    """Apply keyset ordering to ``stmt``; return it and a function making the next cursor.

    The statement fetches ``limit + 1`` rows: the extra row only tells whether there is more.
    """
    if cursor:
        values = decode_cursor(cursor, order)
        key = sa.tuple_(*order)
        bound = sa.tuple_(*(sa.literal(v, col.type) for v, col in zip(values, order, strict=True)))
        stmt = stmt.where(key < bound if descending else key > bound)
    stmt = stmt.order_by(*(c.desc() if descending else c.asc() for c in order)).limit(limit + 1)

    def next_cursor(rows: list[Any]) -> str | None:
        if len(rows) <= limit:
            return None
        last = rows[limit - 1]
        return encode_cursor([last[c.key] for c in order])

    return stmt, next_cursor


def fetch_page(
    session: Session,
    stmt: sa.Select[Any],
    order: Sequence[sa.ColumnElement[Any]],
    cursor: str | None,
    limit: int,
    *,
    descending: bool = False,
    item: Callable[[Any], dict[str, Any]] = dict,
) -> dict[str, Any]:
    """Run ``stmt`` one keyset page at a time: the ``{items, next_cursor}`` answer of API.md."""
    stmt, next_cursor = paginate(stmt, order, cursor, limit, descending=descending)
    rows = list(session.execute(stmt).mappings())
    return {"items": [item(r) for r in rows[:limit]], "next_cursor": next_cursor(rows)}
