"""Import, export and the calendar feed: thin views over services/imports.py and exports.py.

``blp`` is the API part (a logged-in rep); ``feed_bp`` serves ``/cal/<token>.ics``, which phone
calendars fetch without a cookie: the secret token in the URL is the only key.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint as FlaskBlueprint
from flask import Response, current_app, request, stream_with_context, url_for

from .api import Blueprint
from .db import db
from .errors import ApiError
from .schemas import CalendarSchema, ImportFileSchema, ImportSummarySchema
from .security import current_rep, rep_id, require_login
from .services import exports, imports

blp = Blueprint("imports", __name__, description="Import, export and the calendar feed")
blp.before_request(require_login)
feed_bp = FlaskBlueprint("calendar_feed", __name__)

# Room for the multipart envelope around a file of the largest allowed size.
MULTIPART_SLACK = 64 * 1024


@blp.url_value_preprocessor
def _allow_big_uploads(endpoint: str | None, _values: dict[str, Any] | None) -> None:
    """Let an import be up to 5 MB, where the app's limit for other bodies is 1 MB.

    This runs before every ``before_request`` function, CSRF's included, which reads the form
    and so the body: setting the limit any later would be too late.
    """
    if endpoint == "imports.import_clients":
        request.max_content_length = imports.MAX_BYTES + MULTIPART_SLACK


@blp.route("/import", methods=["POST"])
@blp.arguments(ImportFileSchema(), location="files")
@blp.response(200, ImportSummarySchema)
@blp.alt_response(413, description="The file is larger than 5 MB")
@blp.alt_response(415, description="Not a CSV or vCard file (binary, or no known columns)")
def import_clients(files: dict[str, Any]) -> dict[str, Any]:
    """Import clients from a CSV or vCard file; importing the same file again changes nothing."""
    user_id = rep_id()
    rep = current_rep()
    stream = files["file"].stream
    stream.seek(0, 2)
    if stream.tell() > imports.MAX_BYTES:
        raise ApiError(413, "The file is larger than 5 MB. Split it and import the parts.")
    stream.seek(0)
    # The request's own session: loading the rep above already began its write transaction.
    summary = imports.import_file(
        db.session.connection(), user_id, stream, current_app.config["DEFAULT_REGION"], rep.tiers
    )
    db.session.commit()
    return summary


def _closing(chunks: Any, session: Any) -> Any:
    """Stream ``chunks``, then end the read transaction at once: a streamed answer outlives
    the view, and an open transaction would hold PostgreSQL locks until the socket closes.
    (The session is the view's own: by now the app context may already hold another.)"""
    try:
        yield from chunks
    finally:
        session.close()


def _download(chunks: Any, filename: str, mimetype: str = "text/csv") -> Response:
    return Response(
        stream_with_context(_closing(chunks, db.session)),
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@blp.route("/export/clients.csv", methods=["GET"])
@blp.response(200, description="The rep's active clients", content_type="text/csv")
def export_clients() -> Response:
    """The rep's active clients as CSV (UTF-8 with BOM); it re-imports unchanged."""
    return _download(exports.clients_csv(db.session, rep_id()), "touchbase-clients.csv")


@blp.route("/export/touches.csv", methods=["GET"])
@blp.response(200, description="Every call the rep logged", content_type="text/csv")
def export_touches() -> Response:
    """Every call the rep logged, as CSV (UTF-8 with BOM)."""
    rep = current_rep()
    return _download(exports.touches_csv(db.session, rep.id, rep.timezone), "touchbase-calls.csv")


@blp.route("/export/account.json", methods=["GET"])
@blp.response(
    200, description="Everything the server holds about the rep", content_type="application/json"
)
def export_account() -> Response:
    """Everything the server holds about the rep, as one JSON file (services/exports.py)."""
    return _download(
        exports.account_json(db.session, current_rep()),
        "touchbase-account.json",
        "application/json",
    )


def _feed_url(token: str) -> str:
    return url_for("calendar_feed.feed", token=token, _external=True)


def _calendar_answer(user_id: str, nonce: str, made_at: Any, created: bool) -> dict[str, Any]:
    token = exports.calendar_token(current_app.secret_key or "", user_id, nonce)
    return {"url": _feed_url(token), "created": created, "created_at": made_at}


def _after_write(user_id: str, created: bool) -> dict[str, Any]:
    db.session.rollback()  # end the earlier read transaction, to see the write just made
    nonce, made_at = exports.current_calendar(db.session, user_id)
    if nonce is None:
        raise ApiError(401, "Please log in.")
    return _calendar_answer(user_id, nonce, made_at, created)


@blp.route("/calendar", methods=["GET"])
@blp.response(200, CalendarSchema)
def get_calendar() -> dict[str, Any]:
    """The calendar feed's private URL, made on first use; the same URL until a rotate."""
    user_id = rep_id()
    nonce, made_at = exports.current_calendar(db.session, user_id)
    if nonce is not None:  # the usual case (every visit to Settings): one read, no write
        return _calendar_answer(user_id, nonce, made_at, created=False)
    with db.write() as conn:
        created = exports.new_calendar_nonce(
            conn, current_app.secret_key or "", user_id, only_if_none=True
        )
    return _after_write(user_id, created)


@blp.route("/calendar/rotate", methods=["POST"])
@blp.response(200, CalendarSchema)
def rotate_calendar() -> dict[str, Any]:
    """Make a new feed URL; the old one answers 404 from now on."""
    user_id = rep_id()
    with db.write() as conn:
        exports.new_calendar_nonce(conn, current_app.secret_key or "", user_id)
    return _after_write(user_id, created=True)


@feed_bp.route("/cal/<token>.ics", methods=["GET"])
def feed(token: str) -> Response:
    """The rep's open callbacks as iCalendar, for phone calendars to subscribe to."""
    user_id = exports.feed_owner(db.session, token)
    if user_id is None:
        raise ApiError(404, "No such calendar.")
    body = exports.calendar_feed(db.session, user_id, request.host_url.rstrip("/"))
    return Response(
        body,
        mimetype="text/calendar",
        headers={
            "Content-Disposition": 'inline; filename="touchbase.ics"',
            "Cache-Control": "private, no-cache",
            "X-Robots-Tag": "noindex",
        },
    )
