"""Accounts: register, check a password, sessions, the rep's own settings, deleting it all.

Sessions: each login makes a row of ``sessions`` whose random id goes in the signed cookie;
logging out deletes it. A row nobody has used for longer than the cookie lives is deleted at the
next login of anyone, so they never pile up (``seen_on`` moves on once a day, security.py).
"""

from __future__ import annotations

import secrets
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from ..errors import ApiError
from ..models import (
    User,
    callbacks,
    clients,
    push_subscriptions,
    sessions,
    touches,
    users,
    utcnow,
)

# Shown when a client has no talking points of its own, until the rep writes their own set.
DEFAULT_PROMPTS = (
    "How is the product working for you?",
    "Any questions since we last spoke?",
    "I came across something that might help…",
    "How is your new project going?",
    "Just checking in — how are you?",
)

# Checked when the email is unknown, so a wrong email costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash("not a real password")


def normalise_email(email: str) -> str:
    """Emails compare case-insensitively and without surrounding spaces."""
    return email.strip().lower()


def user_dict(user: Any) -> dict[str, Any]:
    """The API's ``user`` shape, from a User row or the request's CurrentUser."""
    quiet = (
        {"start": user.quiet_start, "end": user.quiet_end}
        if user.quiet_start and user.quiet_end
        else None
    )
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "timezone": user.timezone,
        "daily_goal": user.daily_goal,
        "quiet_hours": quiet,
        "reconnect_after_days": user.reconnect_after_days,
        "call_time": user.call_time,
        "tiers": {"A": user.tier_a_days, "B": user.tier_b_days, "C": user.tier_c_days},
        "digest_time": user.digest_time,
        "weekly_push": bool(user.weekly_push),
        "streak_weekends": bool(user.streak_weekends),
        "prompts": list(user.prompts) if user.prompts else list(DEFAULT_PROMPTS),
    }


def register(
    session: Session,
    email: str,
    password: str,
    name: str,
    timezone: str,
    hash_method: str = "scrypt",
) -> User:
    """Create an account; 409 if the email is taken."""
    user = User(
        email=normalise_email(email),
        password_hash=generate_password_hash(password, method=hash_method),
        name=name.strip(),
        timezone=timezone,
    )
    session.add(user)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise ApiError(409, "An account with this email already exists.") from exc
    return user


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The user with this email and password, or None."""
    user = session.scalars(sa.select(User).where(User.email == normalise_email(email))).first()
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    return user if check_password_hash(user.password_hash, password) else None


def update_settings(session: Session, user_id: str, changes: dict[str, Any]) -> User:
    """Apply a PATCH /me body (already validated) to the rep's row."""
    user = session.get(User, user_id)
    if user is None:
        raise ApiError(404, "No such account.")
    for key in (
        "name",
        "timezone",
        "daily_goal",
        "reconnect_after_days",
        "call_time",
        "digest_time",
        "weekly_push",
        "streak_weekends",
    ):
        if key in changes:
            setattr(user, key, changes[key].strip() if key == "name" else changes[key])
    if "prompts" in changes:
        # Blank lines are dropped; an empty or null list means the built-in set.
        prompts = [p.strip() for p in changes["prompts"] or [] if p.strip()]
        user.prompts = prompts or None
    if "quiet_hours" in changes:
        quiet = changes["quiet_hours"]
        user.quiet_start = quiet["start"] if quiet else None
        user.quiet_end = quiet["end"] if quiet else None
    for tier, days in (changes.get("tiers") or {}).items():
        setattr(user, f"tier_{tier.lower()}_days", days)
    session.commit()
    return user


def start_session(session: Session, user_id: str, keep_days: int) -> str:
    """A new session for the rep; its id is for the cookie. The caller commits.

    On the way, the sessions unseen for more than ``keep_days`` are deleted: their cookies have
    expired, so nobody can use them any more.
    """
    today = utcnow().date()
    prune_sessions(session, today - timedelta(days=keep_days))
    session_id = secrets.token_urlsafe(32)
    session.execute(
        sa.insert(sessions).values(
            id=session_id, user_id=user_id, created_at=utcnow(), seen_on=today
        )
    )
    return session_id


def prune_sessions(session: Session, before: date) -> int:
    """Delete the sessions last seen before ``before``; how many went. The caller commits."""
    return session.execute(sa.delete(sessions).where(sessions.c.seen_on < before)).rowcount


def end_session(session: Session, session_id: str) -> None:
    """Log one session out: its cookie opens nothing from now on. The caller commits."""
    session.execute(sa.delete(sessions).where(sessions.c.id == session_id))


def log_out_everywhere(session: Session, user_id: str) -> int:
    """End every session of the rep's, and forget their browsers' push subscriptions: a phone
    that is logged out (a lost one, say) must not go on showing reminders with clients' names.
    A phone that logs in again subscribes again at its next start (push.js). How many sessions
    ended; the caller commits."""
    session.execute(sa.delete(push_subscriptions).where(push_subscriptions.c.user_id == user_id))
    return session.execute(sa.delete(sessions).where(sessions.c.user_id == user_id)).rowcount


def password_matches(session: Session, user_id: str, password: str) -> bool:
    """Whether ``password`` is the rep's (False for an account that is gone)."""
    stored = session.execute(sa.select(users.c.password_hash).where(users.c.id == user_id)).scalar()
    if stored is None:
        check_password_hash(_DUMMY_HASH, password)
        return False
    return check_password_hash(stored, password)


# Everything of a rep's, children first. Each table's own user_id index finds the rows; going
# table by table (rather than leaving it all to ON DELETE CASCADE from users) keeps each
# foreign-key check an index probe.
_OWNED = (callbacks, touches, clients, push_subscriptions, sessions)


def delete_account(session: Session, user_id: str) -> None:
    """Delete the rep and everything of theirs: clients, calls, promises, push subscriptions,
    sessions, and with the ``users`` row the settings and the calendar feed. The caller commits.
    """
    for table in _OWNED:
        session.execute(sa.delete(table).where(table.c.user_id == user_id))
    session.execute(sa.delete(users).where(users.c.id == user_id))
