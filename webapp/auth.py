"""Accounts API: CSRF token, register, log in, log out (here or everywhere), the rep's settings
(/me), and deleting the account."""

from __future__ import annotations

from typing import Any

from flask import current_app, request, session
from flask_login import login_user
from flask_wtf.csrf import generate_csrf

from . import SESSION_DAYS
from .api import Blueprint
from .db import db
from .errors import ApiError
from .extensions import client_address, limiter
from .schemas import (
    AuthResultSchema,
    CsrfSchema,
    LoginSchema,
    MeUpdateSchema,
    PasswordSchema,
    RegisterSchema,
    UserSchema,
)
from .security import CurrentUser, current_rep, load_user, login_first, rep_id, set_rep
from .services import accounts

blp = Blueprint("auth", __name__, description="Accounts and settings")

# Failed password checks, per account and per address. Logging in and deleting the account
# share the same counts, so neither can be used to guess a password the other would not allow.
LOGIN_LIMIT = "10 per minute"
# A session row lives as long as its cookie could (a rolling 60 days), and a day more: the
# cookie and the row are each refreshed at most once a day.
SESSION_KEEP_DAYS = SESSION_DAYS + 1


def _login_account_key() -> str:
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # nested thousands deep: the parser answers 400 for it
        body = None
    email = body.get("email") if isinstance(body, dict) else None
    if isinstance(email, str) and email.strip():
        return "account:" + accounts.normalise_email(email)
    return "address:" + client_address()


def _rep_account_key() -> str:
    # Deleting the account: the logged-in rep's own email, so the count is the login's.
    rep = load_user()
    return "account:" + rep.email if rep is not None else "address:" + client_address()


def _failed(response: Any) -> bool:
    # Only failed attempts count: a rep who logs in fine ten times is not an attacker.
    return response.status_code == 401


def _wrong_password(response: Any) -> bool:
    return response.status_code == 403


def _forget_session() -> None:
    """Empty the cookie: no rep, no CSRF token (the session's row is the caller's to delete)."""
    session.clear()
    set_rep(None)


def _start_session(user: Any) -> dict[str, Any]:
    # A fresh session at login: nothing from before (a fixated id, an old token) carries over,
    # and the session the cookie named before, if any, ends (a copy of that cookie dies too).
    previous = session.get("_user_id")
    if isinstance(previous, str):
        accounts.end_session(db.session, previous)
    session_id = accounts.start_session(db.session, user.id, SESSION_KEEP_DAYS)
    db.session.commit()
    rep = CurrentUser.of(user, session_id)
    session.clear()
    login_user(rep)
    set_rep(rep)
    session.permanent = True
    return {"user": accounts.user_dict(rep), "csrf_token": generate_csrf()}


@blp.route("/csrf", methods=["GET"])
@blp.response(200, CsrfSchema)
def csrf_token() -> dict[str, str]:
    """A CSRF token for the X-CSRFToken header; valid for the whole session."""
    return {"csrf_token": generate_csrf()}


@blp.route("/auth/register", methods=["POST"])
@blp.arguments(RegisterSchema())
@blp.response(201, AuthResultSchema)
def register(data: dict[str, Any]) -> dict[str, Any]:
    """Create an account and log in."""
    user = accounts.register(
        db.session,
        data["email"],
        data["password"],
        data["name"],
        data["timezone"],
        current_app.config["PASSWORD_HASH_METHOD"],
    )
    return _start_session(user)


@blp.route("/auth/login", methods=["POST"])
@limiter.shared_limit(LOGIN_LIMIT, "login-acct", key_func=_login_account_key, deduct_when=_failed)
@limiter.shared_limit(LOGIN_LIMIT, "login-addr", key_func=client_address, deduct_when=_failed)
@blp.arguments(LoginSchema())
@blp.response(200, AuthResultSchema)
def login(data: dict[str, Any]) -> dict[str, Any]:
    """Log in; 401 on a wrong email or password, 429 after 10 failures a minute."""
    user = accounts.authenticate(db.session, data["email"], data["password"])
    if user is None:
        raise ApiError(401, "Wrong email or password.", code="invalid_credentials")
    return _start_session(user)


@blp.route("/auth/logout", methods=["POST"])
@blp.response(204)
def logout() -> None:
    """Log out: this session ends, and its cookie (or any copy of it) opens nothing any more."""
    session_id = session.get("_user_id")
    if isinstance(session_id, str):
        accounts.end_session(db.session, session_id)
        db.session.commit()
    _forget_session()


@blp.route("/auth/logout-all", methods=["POST"])
@login_first
@blp.response(204)
def logout_all() -> None:
    """Log out everywhere: every session of the rep ends, on every phone and browser, and
    their push subscriptions are dropped (no more reminders until a phone logs in again)."""
    accounts.log_out_everywhere(db.session, rep_id())
    db.session.commit()
    _forget_session()


@blp.route("/me", methods=["GET"])
@login_first
@blp.response(200, UserSchema)
def me() -> dict[str, Any]:
    """The logged-in rep's account and settings."""
    return accounts.user_dict(current_rep())


@blp.route("/me", methods=["PATCH"])
@login_first
@blp.arguments(MeUpdateSchema())
@blp.response(200, UserSchema)
def update_me(data: dict[str, Any]) -> dict[str, Any]:
    """Change name, time zone, daily goal, quiet hours, reconnect window, call time, tiers."""
    user = accounts.update_settings(db.session, rep_id(), data)
    return accounts.user_dict(user)


@blp.route("/me", methods=["DELETE"])
@limiter.shared_limit(
    LOGIN_LIMIT, "login-acct", key_func=_rep_account_key, deduct_when=_wrong_password
)
@limiter.shared_limit(
    LOGIN_LIMIT, "login-addr", key_func=client_address, deduct_when=_wrong_password
)
@login_first
@blp.arguments(PasswordSchema())
@blp.response(204)
def delete_me(data: dict[str, Any]) -> None:
    """Delete the account and everything of it, for good; the password is asked again.

    Clients, calls, promises, push subscriptions, sessions, settings and the calendar feed are
    deleted at once, and every session ends. 403 on a wrong password (nothing is deleted; it
    counts toward the login's limit of 10 failures a minute, then 429).
    """
    user_id = rep_id()
    if not accounts.password_matches(db.session, user_id, data["password"]):
        message = "That is not your password: nothing was deleted."
        raise ApiError(403, message, code="wrong_password")
    accounts.delete_account(db.session, user_id)
    db.session.commit()
    _forget_session()
