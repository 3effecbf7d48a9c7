"""Today's list for one rep: gather the facts with three indexed queries, apply the pure rules.

The ordering rules themselves live in ``webapp/scheduling.py`` (shared with the phone app through
the test vectors); this module only reads the rep's rows and shapes the answer.

Each query reads one table, and only the rep's own rows, through an index that starts with
``user_id``: the answer costs the same in a database of ten reps as in one of a thousand
(``bench/today_scale.py``; the plans are in ``docs/query-plans-today.md``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .. import scheduling
from ..models import callback_status_is, callbacks, clients, touches, utcnow
from .clients import CLIENT_COLUMNS, client_dict


def today_for(session: Session, user: Any) -> dict[str, Any]:
    """``GET /today`` for ``user`` (the request's CurrentUser), in the rep's own time zone."""
    now = utcnow()
    tz = ZoneInfo(user.timezone)
    call_time = scheduling.parse_hhmm(user.call_time)
    day = scheduling.local_today(now, tz)

    # Every active client, whole (index: user_id, archived_at): the listed ones are answered
    # from these rows. (Reading them again by id cost more than it saved: an IN list of hundreds
    # of ids, which PostgreSQL's generic plan for the prepared statement filtered row by row,
    # ~100 ms for a rep with 2,000 clients, and two subqueries per row for the open callback.)
    client_rows = session.execute(
        sa.select(*CLIENT_COLUMNS).where(
            clients.c.user_id == user.id, clients.c.archived_at.is_(None)
        )
    ).all()
    by_id = {row.id: row for row in client_rows}

    # Every open callback of the rep's active clients: read by (user_id, status) from one table,
    # an archived client's left out here (archiving cancels them, so there are few).
    open_rows = [
        row
        for row in session.execute(
            sa.select(callbacks.c.id, callbacks.c.client_id, callbacks.c.due_at).where(
                callbacks.c.user_id == user.id, callback_status_is("open")
            )
        )
        if row.client_id in by_id
    ]
    # Each client's soonest open callback, as services/clients.py orders them: due_at, then id.
    soonest: dict[str, Any] = {}
    for row in open_rows:
        best = soonest.get(row.client_id)
        if best is None or (row.due_at, row.id) < (best.due_at, best.id):
            soonest[row.client_id] = row

    facts = [
        scheduling.ClientFacts(
            id=row.id,
            created_at=row.created_at,
            last_touch_at=row.last_touch_at,
            cadence_days=scheduling.effective_cadence(row.cadence_days, row.tags or [], user.tiers),
            has_open_callback=row.id in soonest,
        )
        for row in client_rows
    ]
    items = scheduling.build_today(
        now,
        tz,
        facts,
        [scheduling.CallbackFacts(r.id, r.client_id, r.due_at) for r in open_rows],
        reconnect_after_days=user.reconnect_after_days,
        call_time=call_time,
    )

    start = scheduling.end_of_local_day(day - timedelta(days=1), tz)
    done_today = session.execute(
        sa.select(sa.func.count())
        .select_from(touches)
        .where(
            touches.c.user_id == user.id,
            touches.c.happened_at >= start,
            touches.c.happened_at < scheduling.end_of_local_day(day, tz),
        )
    ).scalar_one()
    return {
        "date": day,
        "items": [
            {
                "client": _client(by_id[item.client_id], soonest.get(item.client_id)),
                "reason": item.reason,
                "due_at": item.due_at,
                "overdue": item.overdue,
                "days_overdue": item.days_overdue,
                "callback_id": item.callback_id,
            }
            for item in items
        ],
        "done_today": done_today,
        "goal": user.daily_goal,
    }


def _client(row: Any, callback: Any) -> dict[str, Any]:
    """The API's client shape (``client_dict``), with the soonest open callback found above."""
    return client_dict(
        {
            **row._mapping,
            "open_cb_id": callback.id if callback is not None else None,
            "open_cb_due": callback.due_at if callback is not None else None,
        }
    )
