"""One JSON error shape for every failure under the API (API.md, Conventions).

``{"error": {"code": "...", "message": "...", "fields": {...}}}``; never an HTML page, never a
redirect. Unexpected exceptions become a 500 in the same shape, and are logged: a 5xx is a bug.
The one expected 5xx is a database that cannot be reached for a moment: 503, with Retry-After.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

import psycopg
import sqlalchemy as sa
from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    500: "server_error",
    503: "unavailable",
}

MESSAGES = {
    400: "The request could not be understood.",
    401: "Please log in.",
    403: "You are not allowed to do that.",
    404: "Not found.",
    405: "That method is not allowed here.",
    409: "That conflicts with what is already saved.",
    413: "The request is too large.",
    422: "Some fields are not valid.",
    429: "Too many attempts. Please wait and try again.",
    500: "Something went wrong on our side.",
    503: "The service is briefly unavailable. Please try again.",
}


class ApiError(Exception):
    """An expected failure with a status, a code and a human sentence."""

    def __init__(
        self,
        status: int,
        message: str | None = None,
        *,
        code: str | None = None,
        fields: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or CODES.get(status, "error")
        self.message = message or MESSAGES.get(status, "Request failed.")
        self.fields = fields
        self.headers = headers or {}


def error_response(err: ApiError) -> ResponseReturnValue:
    """Render an ApiError in the shared shape."""
    body: dict[str, Any] = {"code": err.code, "message": err.message}
    if err.fields:
        body["fields"] = err.fields
    return jsonify(error=body), err.status, err.headers


def from_http_exception(exc: HTTPException) -> ApiError:
    """Translate a werkzeug/webargs/Flask-Limiter exception into an ApiError."""
    status = exc.code or 500
    headers = dict(exc.get_headers())
    headers.pop("Content-Type", None)
    fields = None
    message = MESSAGES.get(status, exc.description)
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages")
    if messages:
        # webargs nests field errors by location: {"json": {...}, "query": {...}}.
        fields = _flatten(messages)
        if status == 400:
            message = "The request body is not valid JSON."
    elif status == 400 and exc.description and "CSRF" in exc.description:
        return ApiError(400, exc.description, code="csrf_failed")
    return ApiError(status, message, fields=fields, headers=headers)


def _flatten(messages: dict[str, Any]) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for location_errors in messages.values():
        if isinstance(location_errors, dict):
            for name, errs in location_errors.items():
                fields[name] = _as_strings(errs)
        else:
            fields["_body"] = _as_strings(location_errors)
    return fields


def _as_strings(errs: Any) -> list[str]:
    if isinstance(errs, dict):
        # Nested schema errors: keep the first level readable ("start: Not a valid time.").
        out: list[str] = []
        for key, value in errs.items():
            for msg in _as_strings(value):
                out.append(f"{key}: {msg}")
        return out
    if isinstance(errs, list | tuple):
        return [m for e in errs for m in _as_strings(e)]
    return [str(errs)]


def handle_http_exception(exc: HTTPException) -> ResponseReturnValue:
    """Flask error handler for every HTTPException (Flask has already logged a 500's cause)."""
    return error_response(from_http_exception(exc))


# The database cannot be used right now: the server is down or restarting, a connection was cut,
# the pool is exhausted, or (SQLite) the file stayed locked past the busy timeout. SQLAlchemy
# wraps most of these; the hot path's raw driver calls (``db.fast_write``) can raise the driver's
# own classes, so both are listed.
DATABASE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    sa.exc.OperationalError,
    sa.exc.TimeoutError,
    sqlite3.OperationalError,
    psycopg.OperationalError,
)
RETRY_AFTER_SECONDS = 5

log = logging.getLogger(__name__)


def handle_database_unavailable(exc: BaseException) -> ResponseReturnValue:
    """503 in the error shape: the phone keeps its outbox and tries again (outbox.js).

    Pooled connections are not repaired here: ``pool_pre_ping`` (``db.make_engine``) replaces
    the dead ones at their next checkout, so the app recovers by itself once the database is back.
    """
    log.error("database unavailable: %s", exc)
    return error_response(ApiError(503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}))


def register(app: Flask) -> None:
    """Install the handlers on ``app``."""
    app.register_error_handler(ApiError, error_response)
    app.register_error_handler(HTTPException, handle_http_exception)
    for exc_class in DATABASE_UNAVAILABLE:
        app.register_error_handler(exc_class, handle_database_unavailable)
