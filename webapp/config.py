"""Settings: read from ``TOUCHBASE_*`` environment variables, with instance-folder defaults.

The embedded default needs nothing set up: the SQLite database, the session secret and the VAPID
key are made on first start and kept in the instance folder, so a restart keeps everyone logged in
and every push subscription valid.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

PREFIX = "TOUCHBASE_"

# Settings that are read from the environment, with their types.
_INT_SETTINGS = ("DISPATCH_INTERVAL", "PROXY_FIX", "MAX_CONTENT_LENGTH")


def _env(name: str) -> str | None:
    value = os.environ.get(PREFIX + name)
    return value if value not in (None, "") else None


ENVIRONMENTS = ("development", "production")
LOG_FORMATS = ("text", "json")
MIN_SECRET_LENGTH = 32


def load_settings(instance_path: str) -> dict[str, Any]:
    """Return the Flask config built from the environment and the instance folder.

    In production (``TOUCHBASE_ENV=production``) nothing secret is made up: the app refuses to
    start unless the secret key, the VAPID key and the VAPID subject are given, because several
    hosts must share them (a key made on one host would log reps out on the next, and break every
    push subscription).
    """
    environment = (_env("ENV") or "development").lower()
    if environment not in ENVIRONMENTS:
        raise RuntimeError(f"{PREFIX}ENV must be development or production, not {environment!r}")
    production = environment == "production"
    if production:
        _check_production()
    log_format = (_env("LOG_FORMAT") or ("json" if production else "text")).lower()
    if log_format not in LOG_FORMATS:
        raise RuntimeError(f"{PREFIX}LOG_FORMAT must be text or json, not {log_format!r}")
    Path(instance_path).mkdir(parents=True, exist_ok=True)
    database_url = _env("DATABASE_URL") or "sqlite:///" + os.path.join(
        instance_path, "touchbase.db"
    )
    settings: dict[str, Any] = {
        "ENVIRONMENT": environment,
        "LOG_FORMAT": log_format,
        # Secure cookies always in production (behind the TLS proxy); otherwise only over HTTPS.
        "SESSION_COOKIE_SECURE": production,
        # /metrics answers only with this bearer token, and not at all without one.
        "METRICS_TOKEN": _env("METRICS_TOKEN"),
        "DATABASE_URL": database_url,
        "SECRET_KEY": _env("SECRET_KEY") or _instance_secret(instance_path),
        "DEFAULT_REGION": (_env("DEFAULT_REGION") or "US").upper(),
        **_ratelimit_settings(_env("RATELIMIT_STORAGE_URI") or "memory://"),
        "PUSH_ORIGINS": _env("PUSH_ORIGINS"),
        "VAPID_PRIVATE_KEY": _pem_or_path(_env("VAPID_PRIVATE_KEY"))
        or _instance_vapid_key(instance_path),
        "VAPID_SUBJECT": _vapid_subject(_env("VAPID_SUBJECT") or "mailto:admin@localhost"),
        "DISPATCH_INTERVAL": 15,
        # Zero means "not behind a proxy"; N trusts N hops of X-Forwarded-* headers.
        "PROXY_FIX": 0,
        # JSON bodies are small; imports raise this for their own route.
        "MAX_CONTENT_LENGTH": 1024 * 1024,
    }
    for name in _INT_SETTINGS:
        raw = _env(name)
        if raw is not None:
            try:
                settings[name] = int(raw)
            except ValueError as exc:
                raise RuntimeError(f"{PREFIX}{name} must be a whole number, not {raw!r}") from exc
    return settings


def _check_production() -> None:
    """Refuse to start in production without the settings every host must share."""
    problems = []
    secret = _env("SECRET_KEY")
    if secret is None:
        problems.append(f"{PREFIX}SECRET_KEY is not set")
    elif len(secret) < MIN_SECRET_LENGTH:
        problems.append(f"{PREFIX}SECRET_KEY is shorter than {MIN_SECRET_LENGTH} characters")
    if _env("VAPID_PRIVATE_KEY") is None:
        problems.append(f"{PREFIX}VAPID_PRIVATE_KEY is not set")
    subject = _env("VAPID_SUBJECT")
    if subject is None:
        problems.append(f"{PREFIX}VAPID_SUBJECT is not set (mailto: or https: of whoever runs it)")
    elif subject.endswith("@localhost"):
        problems.append(f"{PREFIX}VAPID_SUBJECT must be a real contact, not {subject!r}")
    if problems:
        raise RuntimeError(
            "Refusing to start in production: " + "; ".join(problems) + ". See docs/deploy.md."
        )


def _ratelimit_settings(storage_uri: str) -> dict[str, Any]:
    """Flask-Limiter's settings. With several processes the counts live in a shared store
    (``redis://...``), so a limit holds across all of them.

    If that store stops answering, each process goes on counting on its own, in memory, and
    returns to the store once it answers again: logins keep working, still limited (per
    process) rather than refused for everyone. Short socket timeouts keep a hung store from
    hanging the login route.
    """
    settings: dict[str, Any] = {
        "RATELIMIT_STORAGE_URI": storage_uri,
        # Keys in a shared Redis start with this, so deployments sharing one never mix counts.
        "RATELIMIT_KEY_PREFIX": _env("RATELIMIT_KEY_PREFIX") or "touchbase",
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        "RATELIMIT_SWALLOW_ERRORS": True,
    }
    if storage_uri.startswith(("redis", "rediss", "valkey")):
        settings["RATELIMIT_STORAGE_OPTIONS"] = {"socket_connect_timeout": 2, "socket_timeout": 2}
    return settings


def _instance_secret(instance_path: str) -> str:
    """Read the session secret from the instance folder, making it on first start."""
    return instance_file(instance_path, "secret_key", lambda: secrets.token_urlsafe(48)).strip()


def _pem_or_path(value: str | None) -> str | None:
    """``TOUCHBASE_VAPID_PRIVATE_KEY`` may hold the PEM text itself or the path of a PEM file."""
    if value is None or value.lstrip().startswith("-----BEGIN"):
        return value
    path = Path(value)
    if not path.is_file():
        raise RuntimeError(f"{PREFIX}VAPID_PRIVATE_KEY is neither PEM text nor a readable file")
    return path.read_text()


def new_vapid_key() -> str:
    """A new VAPID signing key: P-256, PEM (PKCS#8), as TOUCHBASE_VAPID_PRIVATE_KEY takes it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _instance_vapid_key(instance_path: str) -> str:
    """The VAPID signing key (PEM), made on first start so push subscriptions survive restarts."""
    return instance_file(instance_path, "vapid_private_key.pem", new_vapid_key)


def _vapid_subject(subject: str) -> str:
    # Push services reject a VAPID claim without a contact: refuse to start rather than fail later.
    if not subject.startswith(("mailto:", "https://")):
        raise RuntimeError(
            f"{PREFIX}VAPID_SUBJECT must start with mailto: or https:, not {subject!r}"
        )
    return subject


def instance_file(instance_path: str, name: str, make: Callable[[], str]) -> str:
    """Return the text of ``instance/<name>``, writing ``make()`` there first if it is missing.

    Several workers may start at once: each writes a private temporary file and hard-links it
    into place, which fails for all but the first, so every worker ends up reading the same text.
    """
    path = Path(instance_path) / name
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=instance_path, prefix=f".{name}.")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(make())
            os.chmod(tmp, 0o600)
            # Another worker got there first: its file wins, and ours is dropped.
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    return path.read_text()
