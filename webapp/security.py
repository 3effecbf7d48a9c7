"""Who is calling, and the headers every answer carries.

The user load runs on every API request, so it is a single Core select on the request's own
session (one connection, one transaction), returning a light object rather than an ORM row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import Flask, Response, request
from flask_login import UserMixin
from flask_wtf.csrf import CSRFError

from .db import db
from .errors import ApiError, error_response
from .extensions import login_manager
from .models import users

# A strict policy: scripts and styles only from our own origin, no inline script.
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "worker-src 'self'",
        "manifest-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    # Same-origin requests keep their Referer: flask-wtf checks it for CSRF over HTTPS.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}

_USER_COLUMNS = [
    users.c.id,
    users.c.email,
    users.c.name,
    users.c.timezone,
    users.c.daily_goal,
    users.c.quiet_start,
    users.c.quiet_end,
    users.c.reconnect_after_days,
    users.c.call_time,
    users.c.tier_a_days,
    users.c.tier_b_days,
    users.c.tier_c_days,
]
_LOAD_USER = sa.select(*_USER_COLUMNS).where(users.c.id == sa.bindparam("id"))


@dataclass(frozen=True)
class CurrentUser(UserMixin):
    """The logged-in rep, as read at the start of the request."""

    id: str
    email: str
    name: str
    timezone: str
    daily_goal: int
    quiet_start: str | None
    quiet_end: str | None
    reconnect_after_days: int
    call_time: str
    tier_a_days: int
    tier_b_days: int
    tier_c_days: int

    @property
    def tiers(self) -> dict[str, int]:
        return {"A": self.tier_a_days, "B": self.tier_b_days, "C": self.tier_c_days}


def load_user(user_id: str) -> CurrentUser | None:
    """Flask-Login's loader: one indexed select by primary key."""
    row = db.session.execute(_LOAD_USER, {"id": user_id}).first()
    return CurrentUser(*row) if row is not None else None


def _unauthorized() -> Any:
    raise ApiError(401, "Please log in.")


def _csrf_error(exc: CSRFError) -> Any:
    return error_response(ApiError(exc.code or 400, exc.description, code="csrf_failed"))


def _set_headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    if request.path.startswith("/api/"):
        # Private data: never kept by shared caches or the browser's HTTP cache.
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def init_app(app: Flask) -> None:
    """Wire the user loader, the 401 answer and the response headers into ``app``."""
    login_manager.user_loader(load_user)
    login_manager.unauthorized_handler(_unauthorized)
    # Phones change address all the time; binding the session to an IP would log reps out.
    login_manager.session_protection = None
    app.register_error_handler(CSRFError, _csrf_error)
    app.after_request(_set_headers)


def require_login() -> None:
    """Blueprint guard: every route of the blueprint needs a logged-in rep (401 JSON if not)."""
    from flask_login import current_user

    if not current_user.is_authenticated:
        raise ApiError(401, "Please log in.")
