"""Web Push: the allow-list, subscriptions, and sending one push (VAPID, encryption, headers).

The dispatcher (``dispatch.py``) decides what to send and when; this module knows how to send it
and how to read the push service's answer. It never talks to an endpoint whose origin is not on
the allow-list: the check runs when a subscription is stored, and again just before each send,
so a changed ``TOUCHBASE_PUSH_ORIGINS`` takes effect without touching stored rows.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid
from pywebpush import WebPusher
from sqlalchemy.orm import Session

from ..errors import ApiError
from ..models import new_id, push_subscriptions, utcnow

log = logging.getLogger(__name__)

# The public push services, over https only: Chrome/Edge/Opera (FCM), Firefox, Safari, and
# Windows' own service (one host per region, hence the wildcard).
DEFAULT_PUSH_ORIGINS = (
    "https://fcm.googleapis.com",
    "https://updates.push.services.mozilla.com",
    "https://web.push.apple.com",
    "https://*.notify.windows.com",
)
MAX_ENDPOINT = 2048
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_DEFAULT_PORTS = {"https": 443, "http": 80}

# A reminder stays worth delivering for a few hours if the phone is off (pywebpush sends 0).
TTL = 6 * 60 * 60
# (connect, read) seconds: pywebpush has no timeout of its own unless given one.
TIMEOUT = (3.05, 10.0)
# VAPID tokens: valid 12 hours (push services refuse more than 24), renewed with 1 hour left.
VAPID_VALIDITY = 12 * 60 * 60
VAPID_RENEW_BEFORE = 60 * 60


# The allow-list


@dataclass(frozen=True)
class Origin:
    """One allowed origin. ``host`` may start with ``*.``: any host one or more labels below."""

    scheme: str
    host: str
    port: int

    def matches(self, scheme: str, host: str, port: int) -> bool:
        if (scheme, port) != (self.scheme, self.port):
            return False
        if not self.host.startswith("*."):
            return host == self.host
        suffix = self.host[1:]  # ".notify.windows.com"
        if not host.endswith(suffix):
            return False
        # Every label in front of the suffix must be a plain DNS label: no empty ones, no tricks.
        return all(_LABEL.match(label) for label in host[: -len(suffix)].split("."))


def parse_origins(value: str | None) -> tuple[Origin, ...]:
    """Parse ``TOUCHBASE_PUSH_ORIGINS`` (comma-separated origins); None means the defaults."""
    items = [item.strip() for item in (value or "").split(",") if item.strip()]
    origins = []
    for item in items or DEFAULT_PUSH_ORIGINS:
        parts = urlsplit(item.lower())
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
            raise RuntimeError(f"TOUCHBASE_PUSH_ORIGINS: {item!r} is not an origin")
        host = parts.hostname
        if "*" in host and (not host.startswith("*.") or "*" in host[2:]):
            raise RuntimeError(f"TOUCHBASE_PUSH_ORIGINS: only a leading '*.' is allowed: {item!r}")
        origins.append(Origin(parts.scheme, host, parts.port or _DEFAULT_PORTS[parts.scheme]))
    return tuple(origins)


def endpoint_origin(endpoint: str) -> str:
    """``scheme://host[:port]`` of an endpoint: the VAPID ``aud`` and the rate-limit key."""
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


def allowed(endpoint: str, origins: tuple[Origin, ...]) -> bool:
    """Whether ``endpoint`` is on one of ``origins``. Plain http only where listed as such."""
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or parts.username is not None:
        return False
    if parts.password is not None or "\\" in endpoint or any(c.isspace() for c in endpoint):
        return False
    port = port or _DEFAULT_PORTS[parts.scheme]
    return any(o.matches(parts.scheme, parts.hostname, port) for o in origins)


# Keys


def b64url_decode(value: str) -> bytes:
    """Decode unpadded (or padded) base64url; ValueError when it is not."""
    if not re.fullmatch(r"[A-Za-z0-9_-]*={0,2}", value):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(value.rstrip("=") + "=" * (-len(value.rstrip("=")) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc


def b64url(data: bytes) -> str:
    """Unpadded base64url, as browsers and push services write keys."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def check_keys(p256dh: str, auth: str) -> dict[str, list[str]]:
    """Field errors for a subscription's keys (empty when they are good).

    ``p256dh`` must be an uncompressed point on P-256 (65 bytes); ``auth`` 16 bytes. A bad key
    would otherwise fail at every send, far from the request that stored it.
    """
    errors: dict[str, list[str]] = {}
    try:
        point = b64url_decode(p256dh)
        if len(point) != 65 or point[0] != 4:
            raise ValueError
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        errors["p256dh"] = ["Must be a base64url uncompressed P-256 public key (65 bytes)."]
    try:
        if len(b64url_decode(auth)) != 16:
            raise ValueError
    except ValueError:
        errors["auth"] = ["Must be a base64url 16-byte secret."]
    return errors


def public_key(private_pem: str) -> str:
    """The VAPID public key as the browser's ``applicationServerKey`` wants it."""
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64url(point)


# Subscriptions


_SUBSCRIPTION_COLUMNS = [push_subscriptions.c.id, push_subscriptions.c.endpoint]


def subscribe(
    conn: sa.Connection,
    user_id: str,
    data: dict[str, Any],
    origins: tuple[Origin, ...],
) -> tuple[dict[str, Any], bool]:
    """Store a browser's subscription for this rep; return it and whether it is new.

    A known endpoint is moved to this rep with its new keys: the browser belongs to whoever
    logged in on it last. The caller's write transaction serialises two posts of one endpoint.
    """
    endpoint = data["endpoint"]
    errors = check_keys(data["keys"]["p256dh"], data["keys"]["auth"])
    if not allowed(endpoint, origins):
        errors["endpoint"] = ["This push service is not allowed."]
    if errors:
        raise ApiError(422, fields=errors)
    now = utcnow()
    values = {
        "user_id": user_id,
        "p256dh": data["keys"]["p256dh"],
        "auth": data["keys"]["auth"],
        "updated_at": now,
        "failures": 0,
        "last_error": None,
    }
    update = (
        sa.update(push_subscriptions)
        .where(push_subscriptions.c.endpoint == endpoint)
        .values(values)
        .returning(*_SUBSCRIPTION_COLUMNS, push_subscriptions.c.created_at)
    )
    row = conn.execute(update).first()
    if row is not None:
        return dict(row._mapping), False
    row_id = new_id()
    insert = {**values, "id": row_id, "endpoint": endpoint, "created_at": now}
    try:
        with conn.begin_nested():
            conn.execute(sa.insert(push_subscriptions).values(insert))
    except sa.exc.IntegrityError:
        # The same browser posted twice at once (PostgreSQL): the other insert won.
        return dict(conn.execute(update).one()._mapping), False
    return {"id": row_id, "endpoint": endpoint, "created_at": now}, True


def unsubscribe(conn: sa.Connection, user_id: str, endpoint: str) -> None:
    """Forget this rep's subscription; an unknown endpoint (or another rep's) changes nothing."""
    conn.execute(
        sa.delete(push_subscriptions).where(
            push_subscriptions.c.endpoint == endpoint, push_subscriptions.c.user_id == user_id
        )
    )


def request_test(session: Session, user_id: str) -> int:
    """Queue a test notification to each of this rep's devices; return how many.

    The dispatcher sends it (on its next pass): the web process never calls out itself.
    """
    result = session.execute(
        sa.update(push_subscriptions)
        .where(push_subscriptions.c.user_id == user_id)
        .values(test_requested_at=utcnow())
    )
    session.commit()
    return result.rowcount


# Sending


@dataclass(frozen=True)
class Answer:
    """What a push service said about one push, sorted into what the dispatcher does about it."""

    kind: str  # "sent" | "gone" | "retry" | "config"
    status: int | None
    detail: str
    retry_after: float | None = None


def topic(callback_id: str) -> str:
    """A ``Topic`` header for a callback: 22 base64url characters from the UUID's 16 bytes.

    A re-sent reminder with the same topic replaces the one still waiting at the push service.
    """
    try:
        return b64url(uuid.UUID(callback_id).bytes)
    except ValueError:
        return b64url(callback_id.encode()[:24])


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else time.time()
    return max(0.0, when.timestamp() - current)


class Sender:
    """Sends pushes: one reused HTTP session, VAPID tokens cached per push-service origin.

    Safe to share between threads: requests' connection pool is, and the token cache is
    guarded by a lock.
    """

    def __init__(
        self,
        private_pem: str,
        subject: str,
        origins: tuple[Origin, ...],
        *,
        ttl: int = TTL,
        timeout: tuple[float, float] = TIMEOUT,
        pool_size: int = 10,
    ) -> None:
        self.vapid = Vapid.from_pem(private_pem.encode())
        self.subject = subject
        self.origins = origins
        self.ttl = ttl
        self.timeout = timeout
        self.session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self._tokens: dict[str, tuple[float, dict[str, str]]] = {}
        self._lock = threading.Lock()

    def vapid_headers(self, origin: str) -> dict[str, str]:
        """The ``Authorization`` header for ``origin``, signed again only near expiry.

        Each signature gets a fresh claims dict: pywebpush's ``webpush()`` writes ``aud`` and
        ``exp`` into the dict it is given, which would pin every later push to the first origin.
        """
        now = time.time()
        with self._lock:
            cached = self._tokens.get(origin)
            if cached is not None and cached[0] - now > VAPID_RENEW_BEFORE:
                return cached[1]
            expires = int(now) + VAPID_VALIDITY
            claims = {"sub": self.subject, "aud": origin, "exp": expires}
            headers = self.vapid.sign(claims)
            self._tokens[origin] = (expires, headers)
            return headers

    def send(
        self,
        subscription: dict[str, Any],
        payload: dict[str, Any],
        topic: str,
        *,
        urgency: str = "high",
        ttl: int | None = None,
    ) -> Answer:
        """Encrypt and send one push; classify the answer. Never raises for network trouble.

        Reminders go ``high`` with the default TTL; the morning digest and the weekly summary
        pass ``normal`` and a TTL that ends when they go stale.
        """
        endpoint = subscription["endpoint"]
        if not allowed(endpoint, self.origins):
            return Answer("config", None, "endpoint is no longer on TOUCHBASE_PUSH_ORIGINS")
        headers = {
            **self.vapid_headers(endpoint_origin(endpoint)),
            "Urgency": urgency,
            "Topic": topic,
        }
        info = {
            "endpoint": endpoint,
            "keys": {"p256dh": subscription["p256dh"], "auth": subscription["auth"]},
        }
        data = json.dumps(payload, separators=(",", ":")).encode()
        try:
            resp = WebPusher(info, requests_session=self.session).send(
                data,
                headers,
                ttl=self.ttl if ttl is None else ttl,
                content_encoding="aes128gcm",
                timeout=self.timeout,
            )
        except requests.Timeout:
            return Answer("retry", None, "timed out")
        except requests.RequestException as exc:
            return Answer("retry", None, f"network error: {type(exc).__name__}")
        return classify(resp.status_code, resp.headers.get("Retry-After"), resp.text[:200])

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()


def classify(status: int, retry_after: str | None = None, text: str = "") -> Answer:
    """Sort a push service's status into sent / gone / retry / config (see the issue's table)."""
    if 200 <= status < 300:
        return Answer("sent", status, "")
    if status in (404, 410):
        return Answer("gone", status, f"{status}: subscription expired or unsubscribed")
    if status == 429:
        return Answer("retry", status, "429: rate limited", parse_retry_after(retry_after))
    if status >= 500:
        return Answer(
            "retry", status, f"{status}: push service error", parse_retry_after(retry_after)
        )
    # 400/401/403 (and 413...): our request or our VAPID key is wrong, not the subscription.
    return Answer("config", status, f"{status}: refused: {text.strip()}"[:300])
