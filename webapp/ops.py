"""Running it for a team: the health check, the monitoring figures and structured logs.

- ``GET /healthz`` (no login): 200 when the database answers and its schema is at the migrations'
  head, else 503. A load balancer takes a host out of rotation on 503; a deploy waits for 200.
- ``GET /metrics`` (Prometheus text format): only when ``TOUCHBASE_METRICS_TOKEN`` is set, and only
  with ``Authorization: Bearer <token>``; otherwise 404. The figures come from the database, so any
  web process gives the same answer, however many run:
  reminders due but not sent, reminders being retried or given up on, push subscriptions that
  fail, and the outbox lag (how long a call logged on a phone took to reach the server).
- ``TOUCHBASE_LOG_FORMAT=json`` (the default in production) writes one JSON object per line to
  stderr, for every logger, plus one line per request (method, path, status, duration, the
  proxy's ``X-Request-ID``). With ``text`` (the default otherwise) nothing changes.
"""

from __future__ import annotations

import hmac
import logging
import sys
import time
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Flask, Response, current_app, g, has_request_context, request
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.samples import Sample
from pythonjsonlogger.json import JsonFormatter

from .db import db
from .models import (
    DISPATCHABLE,
    callback_status_is,
    callbacks,
    push_subscriptions,
    touches,
    users,
    utcnow,
)

bp = Blueprint("ops", __name__)

# A reminder counts as late once it has been due this long without a push (a dispatcher pass
# runs every DISPATCH_INTERVAL seconds, 15 by default, so a healthy one is never this late).
LATE_AFTER = timedelta(minutes=2)
# The outbox lag looks at the calls that reached the server in this window.
LAG_WINDOW = timedelta(hours=1)
LAG_SAMPLE = 50_000
LAG_QUANTILES = (0.5, 0.95, 0.99)


# --- health -------------------------------------------------------------------------------


@bp.after_request
def _never_cached(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/healthz", methods=["GET"])
def healthz() -> tuple[dict[str, Any], int]:
    """200 ``{"status": "ok", ...}`` when the database answers at the expected schema, else 503."""
    head = current_app.extensions["touchbase_schema_head"]
    try:
        version = db.session.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    except sa.exc.SQLAlchemyError as exc:
        db.session.rollback()
        logging.getLogger(__name__).error("health check: database unavailable: %s", exc)
        return {"status": "unavailable", "database": "unreachable"}, 503
    if version != head:
        body = {"status": "unavailable", "database": "ok", "schema": version, "expected": head}
        return body, 503
    return {"status": "ok", "database": "ok", "schema": version}, 200


def schema_head(app: Flask) -> str | None:
    """The newest migration's revision, which a healthy database reports."""
    from .extensions import alembic

    with app.app_context():
        heads = alembic.script_directory.get_heads()
    return heads[0] if heads else None


# --- metrics ------------------------------------------------------------------------------


@bp.route("/metrics", methods=["GET"])
def metrics() -> Response:
    """The monitoring figures in Prometheus' text format (see the module docstring)."""
    token = current_app.config.get("METRICS_TOKEN")
    if not token:
        return Response("Not found\n", 404, mimetype="text/plain")
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return Response(
            "Unauthorized\n", 401, {"WWW-Authenticate": "Bearer"}, mimetype="text/plain"
        )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Figures())
    return Response(generate_latest(registry), mimetype="text/plain; version=0.0.4")


class _Figures:
    """A Prometheus collector that reads every figure from the database when scraped."""

    def collect(self) -> Any:
        now = utcnow()
        conn = db.session
        late = conn.execute(
            sa.select(sa.func.count(), sa.func.min(callbacks.c.due_at)).where(
                sa.text(DISPATCHABLE),
                callbacks.c.due_at <= now - LATE_AFTER,
                sa.or_(callbacks.c.claimed_until.is_(None), callbacks.c.claimed_until <= now),
            )
        ).one()
        yield _gauge(
            "touchbase_reminders_late",
            "Reminders due for more than two minutes and not pushed (no dispatcher running, "
            "or it cannot keep up).",
            late[0],
        )
        oldest = (now - late[1]).total_seconds() if late[1] is not None else 0.0
        yield _gauge(
            "touchbase_reminders_late_oldest_seconds",
            "How long the oldest late reminder has been due.",
            oldest,
        )
        retrying = conn.execute(
            sa.select(sa.func.count()).where(sa.text(DISPATCHABLE), callbacks.c.send_attempts > 0)
        ).scalar_one()
        yield _gauge(
            "touchbase_reminders_retrying",
            "Reminders a push service refused (429, 5xx, timeout) that will be tried again.",
            retrying,
        )
        failed = conn.execute(
            sa.select(sa.func.count()).where(
                callback_status_is("open"),
                callbacks.c.notified_at.is_(None),
                callbacks.c.last_error.is_not(None),
            )
        ).scalar_one()
        yield _gauge(
            "touchbase_reminders_failed",
            "Open reminders given up on (no device, or too many failures); the rep sees why.",
            failed,
        )
        subs = conn.execute(
            sa.select(
                sa.func.count(),
                sa.func.count().filter(push_subscriptions.c.failures > 0),
            )
        ).one()
        yield _gauge("touchbase_push_subscriptions", "Devices subscribed to reminders.", subs[0])
        yield _gauge(
            "touchbase_push_subscriptions_failing",
            "Devices whose last push failed (counted in a row until one succeeds).",
            subs[1],
        )
        reps = conn.execute(sa.select(sa.func.count()).select_from(users)).scalar_one()
        yield _gauge("touchbase_reps", "Accounts.", reps)
        yield _outbox_lag(conn, now)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=float(value))


def _outbox_lag(conn: Any, now: Any) -> SummaryMetricFamily:
    """Seconds from a call being logged on the phone to its reaching the server, over the calls
    that arrived in the last hour.

    Each rep's recent arrivals are read from the (user_id, created_at) index, one range per
    rep, so a scrape costs the reps plus the last hour's calls, not the whole call log.
    """
    since = now - LAG_WINDOW
    rows = conn.execute(
        sa.select(touches.c.created_at, touches.c.happened_at)
        .where(touches.c.user_id.in_(sa.select(users.c.id)), touches.c.created_at > since)
        .limit(LAG_SAMPLE)
    ).all()
    lags = sorted(max(0.0, (created - happened).total_seconds()) for created, happened in rows)
    summary = SummaryMetricFamily(
        "touchbase_outbox_lag_seconds",
        "How long calls logged on a phone took to reach the server (calls that arrived in the "
        "last hour). A high figure means phones are offline or failing to sync.",
        labels=["quantile"],
    )
    summary.add_metric([], count_value=len(lags), sum_value=sum(lags))
    for q in LAG_QUANTILES:
        value = lags[min(len(lags) - 1, int(q * len(lags)))] if lags else 0.0
        summary.samples.append(Sample(summary.name, {"quantile": str(q)}, value))
    return summary


# --- logs ---------------------------------------------------------------------------------

LOG_FIELDS = ("asctime", "levelname", "name", "message")


class _RequestFields(logging.Filter):
    """Adds the request's method, path and X-Request-ID to lines logged while serving one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context():
            record.method = request.method
            record.path = request.path
            request_id = request.headers.get("X-Request-ID")
            if request_id:
                record.request_id = request_id[:200]
        return True


def configure_logging(app: Flask) -> None:
    """JSON lines on stderr for every logger when ``LOG_FORMAT`` is ``json``; else as it was."""
    if app.config["LOG_FORMAT"] != "json":
        return
    root = logging.getLogger()
    if not any(getattr(h, "touchbase_json", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            JsonFormatter(
                list(LOG_FIELDS),
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                datefmt="%Y-%m-%dT%H:%M:%S%z",
            )
        )
        handler.addFilter(_RequestFields())
        handler.touchbase_json = True  # type: ignore[attr-defined]
        root.handlers = [handler]
        root.setLevel(logging.INFO)
    # One line per request. Only in JSON mode: the embedded default leaves access logs to
    # gunicorn, and the request path pays nothing.
    app.before_request(_start_clock)
    app.after_request(_log_request)


_access = logging.getLogger("touchbase.request")


def _start_clock() -> None:
    g.touchbase_started = time.perf_counter()


def _log_request(response: Response) -> Response:
    started = g.get("touchbase_started")
    duration = (time.perf_counter() - started) * 1000 if started is not None else None
    _access.info(
        "%s %s %s",
        request.method,
        request.path,
        response.status_code,
        extra={
            "status": response.status_code,
            "duration_ms": round(duration, 2) if duration is not None else None,
            "remote": request.remote_addr,
        },
    )
    return response


def init_app(app: Flask) -> None:
    """Routes, logging and the schema head the health check expects."""
    configure_logging(app)
    app.extensions["touchbase_schema_head"] = schema_head(app)
    if app.config["ENVIRONMENT"] == "production" and app.config["RATELIMIT_STORAGE_URI"].startswith(
        "memory"
    ):
        logging.getLogger(__name__).warning(
            "TOUCHBASE_RATELIMIT_STORAGE_URI is not set: each process counts failed logins on "
            "its own. Point it at Redis when running more than one process (docs/deploy.md)."
        )
    app.register_blueprint(bp)
