"""Today's list for one rep: gather the facts with two indexed queries, apply the pure rules.

The ordering rules themselves live in ``webapp/scheduling.py`` (shared with the phone app through
the test vectors); this module only reads the rep's rows and shapes the answer.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .. import scheduling
from ..models import callbacks, clients, touches, utcnow
from .clients import get_clients


def today_for(session: Session, user: Any) -> dict[str, Any]:
    """``GET /today`` for ``user`` (the request's CurrentUser), in the rep's own time zone."""
    now = utcnow()
    tz = ZoneInfo(user.timezone)
    call_time = scheduling.parse_hhmm(user.call_time)
    day = scheduling.local_today(now, tz)

    # Every open callback of an active client: soonest first (a handful per rep).
    open_rows = session.execute(
        sa.select(callbacks.c.id, callbacks.c.client_id, callbacks.c.due_at)
        .join(clients, clients.c.id == callbacks.c.client_id)
        .where(
            callbacks.c.user_id == user.id,
            callbacks.c.status == "open",
            clients.c.archived_at.is_(None),
        )
    ).all()
    with_callback = {row.client_id for row in open_rows}

    client_rows = session.execute(
        sa.select(
            clients.c.id,
            clients.c.created_at,
            clients.c.last_touch_at,
            clients.c.cadence_days,
            clients.c.tags,
        ).where(clients.c.user_id == user.id, clients.c.archived_at.is_(None))
    ).all()
    facts = [
        scheduling.ClientFacts(
            id=row.id,
            created_at=row.created_at,
            last_touch_at=row.last_touch_at,
            cadence_days=scheduling.effective_cadence(row.cadence_days, row.tags or [], user.tiers),
            has_open_callback=row.id in with_callback,
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

    full = get_clients(session, user.id, (item.client_id for item in items))
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
                "client": full[item.client_id],
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
