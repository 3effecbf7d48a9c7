"""Touchbase: the rep's phone app for keeping promises to clients (Flask backend).

``create_app`` is the only way to get an app; there is no global app outside ``wsgi.py``.
"""

from __future__ import annotations

import os
import time
from typing import Any

from flask import Flask, has_request_context, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

from .api import JSONProvider
from .config import load_settings
from .signing import MISSING, RecentlyVerified

API_PREFIX = "/api/v1"
SESSION_DAYS = 60
REFRESH_AFTER = 24 * 60 * 60  # seconds


class SessionInterface(SecureCookieSessionInterface):
    """The signed-cookie session, with two changes.

    - The cookie is marked Secure whenever the request came over HTTPS (proxies included).
    - A cookie whose signature was checked a moment ago is not checked again (``signing.py``).
    - A permanent session is re-issued at most once a day (a rolling 60 days), not on every
      answer: re-signing the cookie on each request was a tenth of the cost of logging a call.
    """

    def __init__(self) -> None:
        self.verified = RecentlyVerified()

    def open_session(self, app: Flask, request: Any) -> Any:
        """Open the signed cookie, skipping the signature check for a cookie seen a moment ago.

        The memory is keyed by the whole Cookie header as received: the same bytes hold the
        same session cookie, so even parsing the header can be skipped.
        """
        header = request.environ.get("HTTP_COOKIE")
        data = self.verified.get(header) if header else MISSING
        if data is MISSING:
            session = super().open_session(app, request)
            if header and session:
                self.verified.put(header, dict(session))
            return session
        return self.session_class(data)

    def save_session(self, app: Flask, session: Any, response: Any) -> None:
        if session.permanent and not session.modified:
            now = int(time.time())
            if now - session.get("_seen", 0) > REFRESH_AFTER:
                session["_seen"] = now
        if session and not self.should_set_cookie(app, session):
            # The common answer: a logged-in request that changed nothing, so the cookie stays
            # as it is and only "Vary: Cookie" is due. (Flask's save_session gets there too,
            # after reading seven cookie settings and parsing the Vary header to add one word.)
            if session.accessed:
                if "Vary" in response.headers:
                    response.vary.add("Cookie")
                else:
                    response.headers["Vary"] = "Cookie"
            return
        super().save_session(app, session, response)

    def get_cookie_secure(self, app: Flask) -> bool:
        if app.config["SESSION_COOKIE_SECURE"]:
            return True
        return has_request_context() and request.is_secure


class Touchbase(Flask):
    """Flask, remembering which views and request hooks are plain (not async) functions.

    Flask asks ``ensure_sync`` about every hook and view on every request (and flask-smorest
    about each of its wrappers): about 14 ``inspect`` calls a request, 2-3% of logging a call,
    for an answer that never changes. The memory is per app and bounded.
    """

    json_provider_class = JSONProvider  # (Flask's, encoding each answer a little faster)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plain: dict[Any, Any] = {}

    def ensure_sync(self, func: Any) -> Any:
        try:
            if func in self._plain:
                return func
        except TypeError:  # an unhashable callable: ask Flask every time
            return super().ensure_sync(func)
        wrapped = super().ensure_sync(func)
        if wrapped is func and len(self._plain) < 1024:
            self._plain[func] = True
        return wrapped


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: settings from ``TOUCHBASE_*`` (or ``test_config``), extensions, routes."""
    instance_path = os.environ.get("TOUCHBASE_INSTANCE_PATH") or None
    app = Touchbase(__name__, instance_path=instance_path, static_folder=None)
    app.config.from_mapping(load_settings(app.instance_path))
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="touchbase_session",
        PERMANENT_SESSION_LIFETIME=SESSION_DAYS * 24 * 60 * 60,
        SESSION_REFRESH_EACH_REQUEST=False,
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
    from .schemas import ErrorSchema

    # One Api per app: its OpenAPI spec is built from the blueprints registered on it. Its error
    # answers are documented in our own shape (errors.py), not flask-smorest's default one.
    api = Api()
    api.ERROR_SCHEMA = ErrorSchema
    api.init_app(app)
    errors.register(app)
    security.init_app(app)

    from . import auth, callbacks, cli, clients, imports, push, today, touches
    from . import stats as stats_api

    push.init_app(app)
    for module in (auth, clients, touches, callbacks, today, push, imports):
        api.register_blueprint(module.blp, url_prefix=API_PREFIX)
    api.register_blueprint(stats_api.blp, url_prefix=API_PREFIX)
    app.register_blueprint(imports.feed_bp)
    cli.init_app(app)
    from . import ops, pwa

    app.register_blueprint(pwa.bp)
    ops.init_app(app)
    return app
