"""Extension objects, created once and bound in ``create_app``.

They import nothing from the package but ``signing``, which imports nothing at all.
"""

from __future__ import annotations

from flask import Flask, current_app, g, request, session
from flask_alembic import Alembic
from flask_limiter import Limiter
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

from .signing import MISSING, RecentlyVerified


def client_address() -> str:
    """The caller's address (ProxyFix, when configured, has already put the real one here)."""
    return request.remote_addr or "unknown"


class HeaderCSRFProtect(CSRFProtect):
    """Flask-WTF's CSRF protection, tuned for a JSON API written to on every tap.

    - The token is read from the ``X-CSRFToken`` header only (API.md). The stock lookup parses
      the request as a form first, which costs time and accepts a channel the API lacks.
    - A token already checked against this session a moment ago is not unsigned again
      (``signing.py``); a new token, or the same token with another session, is checked fully.
    """

    def __init__(self) -> None:
        super().__init__()
        self.verified = RecentlyVerified()

    def _get_csrf_token(self) -> str | None:
        return request.headers.get("X-CSRFToken")

    def protect(self, apply_exemptions: bool = False) -> None:
        token = self._get_csrf_token()
        key = (current_app.secret_key, token, session.get("csrf_token"))
        if (
            request.method in current_app.config["WTF_CSRF_METHODS"]
            and not request.is_secure  # over HTTPS the referrer check must run every time
            and self.verified.get(key) is not MISSING
        ):
            g.csrf_valid = True
            return
        super().protect(apply_exemptions)
        if g.get("csrf_valid"):
            self.verified.put(key, True)


class AuthLimiter(Limiter):
    """Flask-Limiter, for limits that only the auth routes carry (as view decorators).

    Decorated views check their own limits; the app-wide hook would only look for default
    limits, which there are none of. Skipping it outside the auth routes keeps its per-request
    context off the hot path (logging a call).
    """

    BLUEPRINT = "auth"

    def _check_request_limit(
        self, callable_name: str | None = None, in_middleware: bool = True
    ) -> None:
        if in_middleware and request.blueprint != self.BLUEPRINT:
            return
        super()._check_request_limit(callable_name, in_middleware)

    def init_app(self, app: Flask) -> None:
        """Bind to ``app``, with the per-request hooks scoped to the auth routes.

        Flask-Limiter adds an after-request hook (rate-limit headers, conditional deductions)
        and a teardown hook (its per-request state) for the whole app; outside the routes that
        carry limits they find nothing to do, at about 3% of logging a call. They are moved to
        the auth blueprint, where Flask runs them for every auth request, 429s included.
        """
        super().init_app(app)
        for registry in (app.after_request_funcs, app.teardown_request_funcs):
            mine = [
                f
                for f in registry[None]
                if getattr(f, "__self__", None) is self or (getattr(f, "args", None) == (self,))
            ]
            registry[None] = [f for f in registry[None] if f not in mine]
            registry.setdefault(self.BLUEPRINT, []).extend(mine)


login_manager = LoginManager()
csrf = HeaderCSRFProtect()
limiter = AuthLimiter(key_func=client_address, headers_enabled=True)


alembic = Alembic()
