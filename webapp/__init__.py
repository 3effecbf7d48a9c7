"""Touchbase: the rep's phone app for keeping promises to clients (Flask backend).

``create_app`` is the only way to get an app; there is no global app outside ``wsgi.py``.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, has_request_context, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

from .config import load_settings

API_PREFIX = "/api/v1"


class SessionInterface(SecureCookieSessionInterface):
    """Mark the session cookie Secure whenever the request came over HTTPS (proxies included)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        if app.config["SESSION_COOKIE_SECURE"]:
            return True
        return has_request_context() and request.is_secure


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: settings from ``TOUCHBASE_*`` (or ``test_config``), extensions, routes."""
    instance_path = os.environ.get("TOUCHBASE_INSTANCE_PATH") or None
    app = Flask(__name__, instance_path=instance_path, static_folder=None)
    app.config.from_mapping(load_settings(app.instance_path))
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="touchbase_session",
        PERMANENT_SESSION_LIFETIME=60 * 60 * 24 * 60,
        # An outbox may replay hours later: the token lives as long as the session.
        WTF_CSRF_TIME_LIMIT=None,
        WTF_CSRF_HEADERS=["X-CSRFToken"],
        RATELIMIT_HEADERS_ENABLED=True,
        API_TITLE="Touchbase",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX=API_PREFIX,
        OPENAPI_JSON_PATH="openapi.json",
        ALEMBIC={"script_location": os.path.join(os.path.dirname(__file__), "migrations")},
        # werkzeug's scrypt defaults; tests lower the cost to stay fast.
        PASSWORD_HASH_METHOD="scrypt",
    )
    if test_config:
        app.config.update(test_config)
    app.session_interface = SessionInterface()
    if app.config["PROXY_FIX"]:
        hops = app.config["PROXY_FIX"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]

    from flask_smorest import Api

    from . import errors, security
    from .db import db
    from .extensions import alembic, csrf, limiter, login_manager

    db.init_app(app)
    alembic.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    # One Api per app: its OpenAPI spec is built from the blueprints registered on it.
    api = Api(app)
    errors.register(app)
    security.init_app(app)

    from . import auth, callbacks, cli, clients, today, touches

    for module in (auth, clients, touches, callbacks, today):
        api.register_blueprint(module.blp, url_prefix=API_PREFIX)
    cli.init_app(app)
    return app
