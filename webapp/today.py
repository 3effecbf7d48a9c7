"""Today's list API: who to call today, and why."""

from __future__ import annotations

from typing import Any

from .api import Blueprint, quick_dump
from .db import db
from .schemas import TodaySchema
from .security import current_rep, require_login
from .services import today

blp = Blueprint("today", __name__, description="Today's calls")
blp.before_request(require_login)


@blp.route("/today", methods=["GET"])
@blp.response(200, quick_dump(TodaySchema()))
def get_today() -> dict[str, Any]:
    """Open callbacks due today, then check-ins due by cadence, then a few to reconnect with."""
    return today.today_for(db.session, current_rep())
