"""Stats API: the rep's goals, streak, coverage, promises kept and reasons to call."""

from __future__ import annotations

from typing import Any

from .api import Blueprint
from .db import db
from .schemas import StatsSchema
from .security import current_rep, require_login
from .services import stats

blp = Blueprint("stats", __name__, description="Goals, streak, coverage and reasons to call")
blp.before_request(require_login)


@blp.route("/stats", methods=["GET"])
@blp.response(200, StatsSchema)
def get_stats() -> dict[str, Any]:
    """Today's progress, the streak, coverage by tier, promises kept, persistence, inactive
    clients with an opener, and this week's and last week's summaries, in the rep's zone."""
    return stats.stats_for(db.session, current_rep())
