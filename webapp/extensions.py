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


login_manager = LoginManager()
csrf = CSRFProtect()
limiter = Limiter(key_func=client_address, headers_enabled=True)
alembic = Alembic()
