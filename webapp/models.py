"""The tables. Derived client fields are kept on the row and recomputed from the call log.

Every row that belongs to a rep carries ``user_id`` so that every query can be scoped with one
indexed condition; another rep's ids simply are not found.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column

from .db import Base, UTCDateTime

OUTCOMES = ("reached", "left_message", "no_answer")
CALLBACK_STATUSES = ("open", "done", "cancelled")
# Open, not yet pushed, not given up on: what the dispatcher's partial index covers.
DISPATCHABLE = "status = 'open' AND notified_at IS NULL AND last_error IS NULL"


def callback_status_is(status: str) -> sa.ColumnElement[bool]:
    """``callbacks.status = '<status>'``, the value written into the SQL rather than bound.

    SQLite plans a statement again on every run when a bound value is compared with a column
    that a partial index filters on (``ix_callbacks_dispatch``: status = 'open'), because the
    value decides whether that index may serve. For the newest-touch update of logging a call
    that was about 0.1 ms, most of the write turn; written in, the value is planned once. Use
    this for every comparison of a callback's status.
    """
    if status not in CALLBACK_STATUSES:
        raise ValueError(status)
    return callbacks.c.status == sa.literal_column(f"'{status}'")


def new_id() -> str:
    """A new random UUID as text (ids are strings in the API and in the database)."""
    return str(uuid.uuid4())


def utcnow() -> datetime:
    """The current instant, aware, in UTC."""
    return datetime.now(UTC)


class User(UserMixin, Base):
    __tablename__ = "users"
    __table_args__ = (
        # The calendar feed finds its rep by the hash of the token in its URL.
        sa.Index("ix_users_calendar_token_hash", "calendar_token_hash", unique=True),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    name: Mapped[str] = mapped_column(sa.String(200), default="")
    timezone: Mapped[str] = mapped_column(sa.String(64))
    daily_goal: Mapped[int] = mapped_column(default=10)
    # Quiet hours as local "HH:MM"; both null means no quiet hours.
    quiet_start: Mapped[str | None] = mapped_column(sa.String(5), default="21:00")
    quiet_end: Mapped[str | None] = mapped_column(sa.String(5), default="08:00")
    reconnect_after_days: Mapped[int] = mapped_column(default=90)
    call_time: Mapped[str] = mapped_column(sa.String(5), default="09:00")
    tier_a_days: Mapped[int] = mapped_column(default=30)
    tier_b_days: Mapped[int] = mapped_column(default=90)
    tier_c_days: Mapped[int] = mapped_column(default=180)
    # The optional morning digest push, at this local "HH:MM"; null means off. The dispatcher
    # records the local date it last went out, so it is sent once a day.
    digest_time: Mapped[str | None] = mapped_column(sa.String(5))
    digest_sent_on: Mapped[date | None]
    # The weekly summary as a push on Monday morning, sent once a week.
    weekly_push: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    weekly_sent_on: Mapped[date | None]
    # Whether Saturdays and Sundays count toward the daily-goal streak.
    streak_weekends: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    # The rep's own conversation prompts; null means the built-in set.
    prompts: Mapped[list[str] | None] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The calendar feed's URL secret is HMAC(app secret, rep + nonce): not kept itself, and not
    # derivable from the database alone. Its SHA-256 (hex) finds the rep when a calendar polls.
    calendar_nonce: Mapped[str | None] = mapped_column(sa.String(32))
    calendar_token_hash: Mapped[str | None] = mapped_column(sa.String(64))
    calendar_token_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Client(Base):
    __tablename__ = "clients"
    __table_args__ = (
        sa.Index("ix_clients_user_name", "user_id", "name", "id"),
        sa.Index("ix_clients_user_updated", "user_id", "updated_at", "id"),
        # The rep's archived clients, which the stats leave out (migration 0006).
        sa.Index("ix_clients_user_archived", "user_id", "archived_at"),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(200))
    phone: Mapped[str | None] = mapped_column(sa.String(64))
    email: Mapped[str | None] = mapped_column(sa.String(254))
    company: Mapped[str | None] = mapped_column(sa.String(200))
    notes: Mapped[str | None] = mapped_column(sa.Text)
    talking_points: Mapped[str | None] = mapped_column(sa.Text)
    tags: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    cadence_days: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Derived from the touches, in happened_at order (see services/touches.py).
    last_touch_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_reached_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts_since_reached: Mapped[int] = mapped_column(default=0)
    # Fingerprint of the creating request, so a replayed create is recognised.
    create_hash: Mapped[str | None] = mapped_column(sa.String(64))


class Touch(Base):
    __tablename__ = "touches"
    __table_args__ = (
        sa.CheckConstraint(f"outcome IN {OUTCOMES!r}", name="outcome"),
        sa.Index("ix_touches_client_happened", "client_id", "happened_at"),
        sa.Index("ix_touches_user_happened", "user_id", "happened_at"),
        # Sync: the touches that arrived since a phone last asked.
        sa.Index("ix_touches_user_created", "user_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(sa.ForeignKey("clients.id", ondelete="CASCADE"))
    outcome: Mapped[str] = mapped_column(sa.String(16))
    note: Mapped[str | None] = mapped_column(sa.Text)
    happened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    callback_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    callback_id: Mapped[str | None] = mapped_column(sa.String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Fingerprint of the fields the caller sent: a replay must match it exactly.
    body_hash: Mapped[str] = mapped_column(sa.String(64))


class Callback(Base):
    __tablename__ = "callbacks"
    __table_args__ = (
        sa.CheckConstraint(f"status IN {CALLBACK_STATUSES!r}", name="status"),
        # The rep's promises by status and due date; done_at and client_id ride along so that
        # GET /stats judges a month of promises without reading the table (migration 0006).
        sa.Index(
            "ix_callbacks_user_status_due_done",
            "user_id",
            "status",
            "due_at",
            "done_at",
            "client_id",
        ),
        # Each client's soonest open promise (services/clients.py), read in order from the index.
        sa.Index("ix_callbacks_client_status_due", "client_id", "status", "due_at", "id"),
        sa.Index("ix_callbacks_status_due", "status", "due_at"),
        sa.Index("ix_callbacks_user_updated", "user_id", "updated_at"),
        # Deleting touches (a deleted account) sets their promises' touch_id to null: without
        # this, each deleted touch read the whole table to find them (migration 0008).
        sa.Index("ix_callbacks_touch", "touch_id"),
        # The dispatcher's queue: only the promises it may still have to push (dispatch.py).
        sa.Index(
            "ix_callbacks_dispatch",
            "due_at",
            sqlite_where=sa.text(DISPATCHABLE),
            postgresql_where=sa.text(DISPATCHABLE),
        ),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(sa.ForeignKey("clients.id", ondelete="CASCADE"))
    touch_id: Mapped[str | None] = mapped_column(sa.ForeignKey("touches.id", ondelete="SET NULL"))
    # happened_at of the touch that made the promise: only a later touch fulfils it.
    origin_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(sa.String(10), default="open")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Dispatcher bookkeeping: a lease, and failures the rep can see.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    send_attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    # Which dispatcher pass holds the lease: results are written only while it still does.
    claim_token: Mapped[str | None] = mapped_column(sa.String(32))


class PushSubscription(Base):
    """One browser's push subscription. The endpoint is the browser's; the rep is whoever
    posted it last (a shared phone moves to the rep who logs in on it)."""

    __tablename__ = "push_subscriptions"
    __table_args__ = (
        sa.Index("ix_push_subscriptions_user", "user_id"),
        sa.Index("ix_push_subscriptions_test", "test_requested_at"),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    endpoint: Mapped[str] = mapped_column(sa.String(2048), unique=True)
    p256dh: Mapped[str] = mapped_column(sa.String(100))
    auth: Mapped[str] = mapped_column(sa.String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Failed pushes in a row, and the last push service answer that was not a success.
    failures: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    # Set by POST /push/test; the dispatcher sends the test and clears it.
    test_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LoginSession(Base):
    """One logged-in browser: the signed session cookie carries this row's id, not the rep's.

    Logging out deletes the row, so a copy of the cookie is worth nothing from then on, in every
    worker at once. ``seen_on`` is moved on at most once a day (security.py), and rows unseen for
    longer than a session lives are deleted at the next login (services/accounts.py). The id is
    kept as is: a cookie also needs the app's secret key to be signed, so a copy of the
    database alone opens no session (as with the calendar token).
    """

    __tablename__ = "sessions"
    __table_args__ = (
        sa.Index("ix_sessions_user", "user_id"),
        sa.Index("ix_sessions_seen_on", "seen_on"),
    )

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    seen_on: Mapped[date] = mapped_column(sa.Date)


users = User.__table__
clients = Client.__table__
touches = Touch.__table__
callbacks = Callback.__table__
push_subscriptions = PushSubscription.__table__
sessions = LoginSession.__table__
