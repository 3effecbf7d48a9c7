"""Extension objects, created once and bound in ``create_app`` (no imports from our package)."""

from __future__ import annotations

from flask import request
from flask_alembic import Alembic
from flask_limiter import Limiter
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect


def client_address() -> str:
    """The caller's address (ProxyFix, when configured, has already put the real one here)."""
    return request.remote_addr or "unknown"


class HeaderCSRFProtect(CSRFProtect):
    """CSRF protection reading the token from the ``X-CSRFToken`` header only (API.md).

    The stock lookup parses the request as a form first, which costs time on every JSON write
    and accepts a channel the API does not offer.
    """

    def _get_csrf_token(self) -> str | None:
        return request.headers.get("X-CSRFToken")


login_manager = LoginManager()
csrf = HeaderCSRFProtect()
limiter = Limiter(key_func=client_address, headers_enabled=True)


@limiter.request_filter
def _outside_auth() -> bool:
    # Only the auth routes carry limits; skipping the rest saves the lookup on every request.
    return request.blueprint != "auth"


alembic = Alembic()
