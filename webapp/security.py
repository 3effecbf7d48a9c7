"""Who is calling, and the headers every answer carries.

The session cookie names a row of ``sessions`` (models.LoginSession), not the rep: logging out
deletes the row, and the cookie, or any copy of it, is then nobody's, in every worker at once.
So every API request that needs the rep looks its session up: one indexed select joining
``sessions`` to ``users`` by the session's id, made once per request and remembered in ``g``,
returning a light object rather than an ORM row. It runs straight on the driver
(``db.Prepared``), outside the view's own transaction: on SQLite a write request's session would
take the write lock (BEGIN IMMEDIATE) just to read it, before the hot path (logging a call)
asks for that lock again on its own connection.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from flask import Flask, Response, g, request, session
from flask_login import UserMixin
from flask_wtf.csrf import CSRFError

from .db import Prepared, db
from .errors import ApiError, error_response
from .extensions import login_manager
from .models import sessions, users

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
    users.c.digest_time,
    users.c.weekly_push,
    users.c.streak_weekends,
    users.c.prompts,
]
# The per-request load: the session's row and its rep's, by the session id (the primary key).
_LOAD_SESSION = Prepared(
    sa.select(*_USER_COLUMNS, sessions.c.seen_on)
    .join_from(sessions, users, users.c.id == sessions.c.user_id)
    .where(sessions.c.id == sa.bindparam("sid"))
)


@dataclass(frozen=True)
class CurrentUser(UserMixin):
    """The logged-in rep, as read at the start of the request, with the session they came in."""

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
    digest_time: str | None
    weekly_push: bool
    streak_weekends: bool
    prompts: list[str] | None
    session_id: str

    @property
    def tiers(self) -> dict[str, int]:
        return {"A": self.tier_a_days, "B": self.tier_b_days, "C": self.tier_c_days}

    def get_id(self) -> str:
        """What Flask-Login keeps in the cookie (``_user_id``): the session's id."""
        return self.session_id

    @classmethod
    def of(cls, user: Any, session_id: str) -> CurrentUser:
        """The same object from a ``User`` row (at login, before any lookup)."""
        return cls(*(getattr(user, c.key) for c in _USER_COLUMNS), session_id=session_id)


def _lookup(session_id: str) -> CurrentUser | None:
    """The rep of this session, or None when the session has ended (or never was)."""
    row = db.read_first(_LOAD_SESSION, {"sid": session_id})
    if row is None:
        return None
    *columns, seen_on = row
    today = datetime.now(UTC).date()
    if seen_on < today:  # at most once a day: the pruning goes by this (services/accounts.py)
        _seen(session_id, today)
    return CurrentUser(*columns, session_id=session_id)


def _seen(session_id: str, today: date) -> None:
    # A short write of its own. Nothing of the request's has touched the database yet (the
    # lookup comes first), so this cannot wait on a write lock the request itself holds.
    with db.write() as conn:
        conn.execute(sa.update(sessions).where(sessions.c.id == session_id).values(seen_on=today))


_NOBODY = object()


def load_user(session_id: str | None = None) -> CurrentUser | None:
    """The logged-in rep, looked up once per request; also Flask-Login's user loader, which
    passes the cookie's ``_user_id`` (the session's id)."""
    found = g.get("_rep", _NOBODY)
    if found is _NOBODY:
        sid = session.get("_user_id") if session_id is None else session_id
        found = g._rep = _lookup(sid) if isinstance(sid, str) and sid else None
    return found


def set_rep(user: CurrentUser | None) -> None:
    """Make ``user`` the request's rep from now on (at login, logout and account deletion)."""
    g._rep = user


def _unauthorized() -> Any:
    raise ApiError(401, "Please log in.")


def _csrf_error(exc: CSRFError) -> Any:
    return error_response(ApiError(exc.code or 400, exc.description, code="csrf_failed"))


_SECURITY_HEADER_ITEMS = list(SECURITY_HEADERS.items())


def _set_headers(response: Response) -> Response:
    # extend, not update: no view sets these itself, and update re-scans the list per header.
    headers = response.headers
    headers.extend(_SECURITY_HEADER_ITEMS)
    # Private data: never kept by shared caches or the browser's HTTP cache. (One look for a
    # view's own value, then an append: setdefault scans the list three times.)
    if request.path.startswith("/api/") and "Cache-Control" not in headers:
        headers.add("Cache-Control", "no-store")
    return response


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_NUL_MESSAGE = "Text cannot contain NUL characters."


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def check_input() -> None:
    """Refuse, in the error shape, API input that would otherwise end as a 500 or be ignored.

    - A body that is neither JSON nor a multipart upload: 415. The schemas would see no body at
      all, so a PATCH in text/plain would answer 200 and change nothing.
    - NUL characters in the query or the body: 422. PostgreSQL text cannot hold them, so they are
      refused on every database alike.
    (JSON that Python cannot decode at all is the parser's job: see ``api.JsonParser``.)
    """
    if not request.path.startswith("/api/"):
        return
    if request.query_string:  # (most API calls have none, and parsing nothing still costs)
        bad_args = [name for name, values in request.args.lists() if _has_nul([name, *values])]
        if bad_args:
            raise ApiError(422, fields={name: [_NUL_MESSAGE] for name in bad_args})
    if request.method not in _BODY_METHODS or request.mimetype == "multipart/form-data":
        return
    data = request.get_data(cache=True)
    if not request.is_json and (data or request.form):
        # (A urlencoded form was already read by the CSRF check: it shows in request.form.)
        raise ApiError(415, "Send the request body as JSON (Content-Type: application/json).")
    # In JSON text a NUL can only be written as an escape: look closer only when one is there.
    if b"\\u0000" not in data:
        return
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        return  # malformed: the parser answers 400
    if isinstance(body, dict):
        bad = [name for name, value in body.items() if _has_nul([name, value])]
        if bad:
            raise ApiError(422, fields={name: [_NUL_MESSAGE] for name in bad})
    elif _has_nul(body):
        raise ApiError(422, fields={"_schema": [_NUL_MESSAGE]})


def init_app(app: Flask) -> None:
    """Wire the user loader, the 401 answer, input checks and the response headers into ``app``."""
    login_manager.user_loader(load_user)
    login_manager.unauthorized_handler(_unauthorized)
    # Phones change address all the time; binding the session to an IP would log reps out.
    login_manager.session_protection = None
    app.register_error_handler(CSRFError, _csrf_error)
    app.before_request(check_input)
    app.after_request(_set_headers)


def rep_id() -> str:
    """The logged-in rep's id (every query is scoped by it); 401 if the session has ended."""
    return current_rep().id


def current_rep() -> CurrentUser:
    """The logged-in rep with their settings (one select a request); 401 if there is none:
    no cookie, a session that was logged out, or an account that is gone."""
    user = load_user()
    if user is None:
        raise ApiError(401, "Please log in.")
    return user


def login_first(view: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: answer 401 before the body is even parsed when nobody is logged in."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        rep_id()
        return view(*args, **kwargs)

    return wrapper


def require_login() -> None:
    """Blueprint guard: every route of the blueprint needs a logged-in rep (401 JSON if not)."""
    rep_id()
