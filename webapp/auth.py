"""Accounts API: CSRF token, register, log in, log out, and the rep's settings (/me)."""

from __future__ import annotations

from typing import Any

from flask import current_app, request, session
from flask_login import login_user, logout_user
from flask_wtf.csrf import generate_csrf

from .api import Blueprint
from .db import db
from .errors import ApiError
from .extensions import client_address, limiter
from .schemas import (
    AuthResultSchema,
    CsrfSchema,
    LoginSchema,
    MeUpdateSchema,
    RegisterSchema,
    UserSchema,
)
from .security import current_rep, login_first, rep_id
from .services import accounts

blp = Blueprint("auth", __name__, description="Accounts and settings")

LOGIN_LIMIT = "10 per minute"


def _login_account_key() -> str:
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # nested thousands deep: the parser answers 400 for it
        body = None
    email = body.get("email") if isinstance(body, dict) else None
    if isinstance(email, str) and email.strip():
        return "account:" + accounts.normalise_email(email)
    return "address:" + client_address()


def _failed(response: Any) -> bool:
    # Only failed attempts count: a rep who logs in fine ten times is not an attacker.
    return response.status_code == 401


def _start_session(user: Any) -> dict[str, Any]:
    # A fresh session at login: nothing from before (a fixated id, an old token) carries over.
    session.clear()
    login_user(user)
    session.permanent = True
    return {"user": accounts.user_dict(user), "csrf_token": generate_csrf()}


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
@limiter.limit(LOGIN_LIMIT, key_func=_login_account_key, deduct_when=_failed, scope="login-acct")
@limiter.limit(LOGIN_LIMIT, key_func=client_address, deduct_when=_failed, scope="login-addr")
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
    """Log out and forget the session."""
    logout_user()
    session.clear()


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
